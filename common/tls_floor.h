/* SPDX-License-Identifier: Apache-2.0 */
/* tls_floor.h - TLS 1.2 is the floor on every link. The HTTPS servers
 * (provisiond, tracestore: libmicrohttpd over GnuTLS) take this priority
 * string, since GnuTLS's NORMAL still offers TLS 1.0 and 1.1; the OpenSSL
 * clients set their minimum version where they open the link (MQTT in
 * agent/mqtt, provisioning in agent/provision). */
#ifndef LINEAGENT_TLS_FLOOR_H
#define LINEAGENT_TLS_FLOOR_H

#define TLS_FLOOR_GNUTLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

#endif
