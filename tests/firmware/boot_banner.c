/* SPDX-License-Identifier: Apache-2.0 */
/* boot_banner.c - a tiny Cortex-M3 firmware for QEMU's lm3s6965evb, used by
 * the gdb adapter's integration test: it prints a boot banner with its
 * version on UART0, again and again, so a boot check that attaches to the
 * console at any moment sees a whole line. Built with -DFW_VERSION="x.y.z". */
#include <stdint.h>

#ifndef FW_VERSION
#error "build with -DFW_VERSION=\"x.y.z\""
#endif

#define UART0_DR (*(volatile uint32_t *)0x4000C000u)
#define UART0_FR (*(volatile uint32_t *)0x4000C018u)
#define UART_FR_TXFF (1u << 5)

extern uint32_t _stack_top;
void reset_handler(void);

/* Initial SP and reset vector: what a probe reads to start the image. */
__attribute__((section(".vectors"), used)) static const void *const vectors[2] = {
    &_stack_top,
    (void *)reset_handler,
};

static void put(const char *s)
{
    for (; *s; s++) {
        while (UART0_FR & UART_FR_TXFF) {
        }
        UART0_DR = (uint32_t)(unsigned char)*s;
    }
}

void reset_handler(void)
{
    for (;;) {
        put("lineagent-fw boot version " FW_VERSION "\r\n");
        for (volatile uint32_t i = 0; i < 200000u; i++) {
        }
    }
}
