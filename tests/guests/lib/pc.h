/*
 * pc.h - the PC platform as the guests see it: MMIO access, the local APIC and IOAPIC
 * registers, the firmware tables searched the way a kernel searches them (ACPI RSDP in
 * the EBDA's first KiB and 0xe0000-0xfffff, the MP floating pointer in the EBDA, the
 * last KiB of base memory and 0xf0000-0xfffff), and a delay on the ACPI PM timer.
 * Works the same on QEMU (SeaBIOS's and QEMU's tables) and xbt-run (its own).
 */
#ifndef GUEST_PC_H
#define GUEST_PC_H

#include "guest.h"

#define LAPIC 0xfee00000u
#define IOAPIC 0xfec00000u
#define HPET 0xfed00000u

enum {
    APIC_ID = 0x20, APIC_VER = 0x30, APIC_TPR = 0x80, APIC_APR = 0x90, APIC_PPR = 0xa0,
    APIC_EOI = 0xb0, APIC_LDR = 0xd0, APIC_DFR = 0xe0, APIC_SVR = 0xf0, APIC_ISR = 0x100,
    APIC_TMR = 0x180, APIC_IRR = 0x200, APIC_ESR = 0x280, APIC_ICR = 0x300,
    APIC_ICR2 = 0x310, APIC_LVTT = 0x320, APIC_LINT0 = 0x350, APIC_LINT1 = 0x360,
    APIC_LVTERR = 0x370, APIC_TMICT = 0x380, APIC_TMCCT = 0x390, APIC_TDCR = 0x3e0,
};

static inline u32 mmio_read32(u32 a) { return *(volatile u32 *)a; }
static inline void mmio_write32(u32 a, u32 v) { *(volatile u32 *)a = v; }
static inline u32 apic_read(u32 reg) { return mmio_read32(LAPIC + reg); }
static inline void apic_write(u32 reg, u32 v) { mmio_write32(LAPIC + reg, v); }
/* The bit of vector v in the ISR, TMR or IRR starting at base. */
static inline int apic_bit(u32 base, u32 v) { return (apic_read(base + 0x10 * (v / 32)) >> (v % 32)) & 1; }

u32 ioapic_read(u32 reg);
void ioapic_write(u32 reg, u32 v);
/* Redirection entry of pin: low and high halves. */
void ioapic_route(int pin, u32 low, u32 high);
u32 ioapic_entry_low(int pin);

/* The 8-bit sum of n bytes. */
u8 sum8(const void *p, u32 n);

/* ACPI: the RSDP, or 0; a table by signature through the XSDT (revision 2 and a valid
   XSDT) or the RSDT, checksum verified, or 0. */
u32 acpi_rsdp(void);
u32 acpi_table(const char *sig);
/* MP floating pointer structure, checksum verified, or 0. */
u32 mp_floating(void);

/* The ACPI PM timer (port from the FADT): 24 bits at 3.579545 MHz. */
u32 pm_timer_port(void);
u32 pm_timer_read(void);
/* Busy-waits us microseconds on the PM timer. */
void pm_delay_us(u32 us);
/* Waits until *count reaches target or max_us pass; nonzero if it did.  Timer
   interrupts may come late on a loaded host (QEMU runs its timer callbacks on another
   thread than the vCPU's): tests wait for the first one before they count. */
int pm_wait_count(volatile u32 *count, u32 target, u32 max_us);

#endif
