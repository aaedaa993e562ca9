#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# exec_provision_example.sh - a complete PROVISION program for the exec
# adapter, the contract in adapters/README.md. The "board"
# is a directory, BOARDS/<board id>/, standing in for the device's identity
# area and its secure element; a real program talks to the board through the
# fixture instead, and must never print or log the private key.
#
# Usage (exec.provision.args):  BOARDS {board_id}          the server makes the key
#                               BOARDS {board_id} csr      the board makes it (exec.provision_csr = true)
# With csr the board makes its key pair and the program prints
#   {"csr":"-----BEGIN CERTIFICATE REQUEST-----\n..."}
# then waits. Either way the identity arrives as one JSON document on stdin:
#   {"identity":{"serial":..,"device_id":..,"factory_code":..,"issued_at":..,
#     "macs":[..],"certificate":PEM,"ca_chain":PEM,"cert_sha256":..,
#     "private_key":PEM (only when the server made the key)}}
# The program writes it to the board, reads it back and prints
#   {"readback":{"serial":..,"macs":[..],"device_id":..,"cert_sha256":..}}
# or, on failure, {"failure_mode":"<vocabulary>","detail":".."} and exits non-zero.
set -euo pipefail
umask 077
boards=$1 board_id=$2 mode=${3:-}
board=$boards/$board_id
fail() { jq -cn --arg m "$1" --arg d "$2" '{failure_mode: $m, detail: $d}'; exit 1; }
field() { printf '%s' "$doc" | jq -j ".identity.$1 // empty"; } # a pipe: no temporary file holds the key

mkdir -p "$board"
if [ "$mode" = csr ]; then
  # The board's key generator; the private key never leaves the board.
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$board/key.pem" 2>/dev/null \
    || fail provision_csr_failed "the board could not make a key pair"
  csr=$(openssl req -new -key "$board/key.pem" -subj "/CN=$board_id" 2>/dev/null) \
    || fail provision_csr_failed "the board could not make a CSR"
  jq -cn --arg csr "$csr" '{csr: $csr}'
fi

doc=$(cat) # the agent closes stdin after the one document
[ -n "$(field serial)" ] || fail provision_write_failed "no identity on standard input"
if [ "$mode" = csr ]; then
  [ -z "$(field private_key)" ] || fail provision_write_failed "a private key came for a board-made key"
else
  field private_key >"$board/key.pem"
fi
# Writing the identity area of the board.
field certificate >"$board/cert.pem"
field ca_chain >"$board/ca.pem"
printf '%s' "$doc" | jq -c '.identity | {serial, macs, device_id}' >"$board/identity.json"

# Reading it back from the board: what the agent compares with what was issued.
[ "$(openssl x509 -in "$board/cert.pem" -noout -pubkey)" = "$(openssl pkey -in "$board/key.pem" -pubout)" ] \
  || fail provision_key_mismatch "the certificate does not hold the board's key"
cert_sha256=$(openssl x509 -in "$board/cert.pem" -outform DER | sha256sum | cut -c1-64)
jq -c --arg c "$cert_sha256" '{readback: (. + {cert_sha256: $c})}' "$board/identity.json"
