/*
 * test_memslots.c - guest physical memory slots through the public API (API 1.4):
 * RAM in two slots far apart (the second an embedder's memfd), ROM, a hole between
 * slots, dirty logs (translated kernel code with paging off and on, callout writes,
 * user code in strict, direct and adaptive mode), slots replaced between runs, and the
 * regions the API must refuse.
 */
#define _GNU_SOURCE
#include <check.h>
#include <sched.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "xbt/xbt.h"

#define SLOT1_GPA 0x40000000u
#define SLOT1_SIZE (8u << 20)
#define ROM_GPA 0xFFFF0000u
#define ROM_SIZE 0x10000u
#define PD 0x10000u       /* page directory */
#define PT1 0x20000u      /* page table of 0x40000000..0x403FFFFF (4 KiB pages) */
#define PTROM 0x21000u    /* page table of 0xFFC00000..: the ROM's last 64 KiB */

static int embedder_memfd(uint64_t size)
{
    int fd = memfd_create("test-slot", MFD_CLOEXEC);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(ftruncate(fd, (off_t)size), 0);
    return fd;
}

static xbt_exit *run(xbt_vcpu *cpu)
{
    xbt_exit *ex;
    ck_assert_int_eq(xbt_vcpu_run(cpu, &ex), XBT_OK);
    if (ex->reason == XBT_EXIT_INTERNAL_ERROR)
        ck_abort_msg("internal error: %s", ex->internal.message);
    return ex;
}

static void expect_out(xbt_vcpu *cpu, uint16_t port, uint32_t data)
{
    xbt_exit *ex = run(cpu);
    ck_assert_uint_eq(ex->reason, XBT_EXIT_IO);
    ck_assert_uint_eq(ex->io.port, port);
    ck_assert_uint_eq(ex->io.data, data);
}

/* The dirty log of slot 1 is exactly these pages (a list ending in -1). */
static void expect_log(xbt_vm *vm, const int *pages)
{
    uint64_t bm[(SLOT1_SIZE >> 12) / 64], want[(SLOT1_SIZE >> 12) / 64];
    memset(want, 0, sizeof want);
    for (; *pages >= 0; pages++)
        want[*pages / 64] |= 1ull << (*pages % 64);
    memset(bm, 0xA5, sizeof bm);
    ck_assert_int_eq(xbt_vm_get_dirty_log(vm, 1, bm), XBT_OK);
    for (unsigned w = 0; w < sizeof bm / 8; w++)
        ck_assert_msg(bm[w] == want[w], "dirty log word %u: %#llx, expected %#llx", w,
                      (unsigned long long)bm[w], (unsigned long long)want[w]);
}

/* Page tables in slot 0: 0..16 MiB identity in 4 MiB pages (user-accessible), slot 1's
   first 4 MiB through PT1 (4 KiB pages), its second 4 MiB as one 4 MiB page, a 4 MiB
   page at 0x20000000 where no slot is (the hole), the ROM's 64 KiB through PTROM. */
static void page_tables(xbt_vm *vm)
{
    uint32_t pd[1024] = { 0 }, pt[1024], ptrom[1024] = { 0 };
    for (uint32_t i = 0; i < 4; i++)
        pd[i] = (i << 22) | 0x87;
    pd[SLOT1_GPA >> 22] = PT1 | 0x07;
    pd[(SLOT1_GPA >> 22) + 1] = (SLOT1_GPA + (4u << 20)) | 0x87;
    pd[0x20000000u >> 22] = 0x20000000u | 0x83;
    pd[1023] = PTROM | 0x07;
    for (uint32_t k = 0; k < 1024; k++)
        pt[k] = (SLOT1_GPA + (k << 12)) | 0x07;
    for (uint32_t k = 1008; k < 1024; k++)
        ptrom[k] = (0xFFC00000u + (k << 12)) | 0x07;
    ck_assert_int_eq(xbt_vm_write_phys(vm, PD, pd, sizeof pd), XBT_OK);
    ck_assert_int_eq(xbt_vm_write_phys(vm, PT1, pt, sizeof pt), XBT_OK);
    ck_assert_int_eq(xbt_vm_write_phys(vm, PTROM, ptrom, sizeof ptrom), XBT_OK);
}

/* A VM with slot 0 (16 MiB at 0, cfg.ram_size), slot 1 (8 MiB at 1 GiB, the embedder's
   memfd *fd, mapped by the embedder at *view) with a dirty log, slot 2 (64 KiB of ROM
   below 4 GiB). */
static xbt_vm *make_vm(uint32_t mode, int *fd, uint8_t **view)
{
    xbt_vm_config c = XBT_VM_CONFIG_INIT;
    c.ram_size = 16u << 20;
    c.user_mode = mode;
    xbt_vm *vm;
    ck_assert_int_eq(xbt_vm_create(&c, &vm), XBT_OK);
    *fd = embedder_memfd(SLOT1_SIZE + 0x3000);
    *view = mmap(NULL, SLOT1_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, *fd, 0x3000);
    ck_assert_ptr_ne(*view, MAP_FAILED);
    xbt_mem_region r1 = { 1, XBT_MEM_LOG_DIRTY, SLOT1_GPA, SLOT1_SIZE, *fd, 0, 0x3000 };
    ck_assert_int_eq(xbt_vm_set_mem_region(vm, &r1), XBT_OK);
    xbt_mem_region r2 = { 2, XBT_MEM_READONLY, ROM_GPA, ROM_SIZE, -1, 0, 0 };
    ck_assert_int_eq(xbt_vm_set_mem_region(vm, &r2), XBT_OK);
    uint8_t rom[ROM_SIZE];
    for (uint32_t i = 0; i < ROM_SIZE; i++)
        rom[i] = (uint8_t)(i * 7 + 1);
    ck_assert_int_eq(xbt_vm_write_phys(vm, ROM_GPA, rom, sizeof rom), XBT_OK);
    ck_assert_uint_eq(xbt_vm_mem_host(vm, 2)[0x10], rom[0x10]);
    return vm;
}

static uint32_t rom_word(uint32_t off)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | (uint8_t)((off + (uint32_t)i) * 7 + 1);
    return v;
}

static void flat_kernel(xbt_vm *vm, xbt_vcpu *cpu, uint32_t eip)
{
    uint64_t gdt[3] = { 0, 0x00cf9a000000ffffull, 0x00cf92000000ffffull };
    ck_assert_int_eq(xbt_vm_write_phys(vm, 0x1000, gdt, sizeof gdt), XBT_OK);
    xbt_sregs s;
    xbt_vcpu_get_sregs(cpu, &s);
    s.gdt.base = 0x1000;
    s.gdt.limit = 23;
    s.idt.base = 0x2000;
    s.idt.limit = 0x7ff;
    ck_assert_int_eq(xbt_vcpu_set_sregs(cpu, &s), XBT_OK);
    xbt_regs r = { 0, 0, 0, 0, 0x90000, 0, 0, 0, eip, 0x2 };
    ck_assert_int_eq(xbt_vcpu_set_regs(cpu, &r), XBT_OK);
}

/* Translated kernel code: slot 1 written with paging off (identity window), then paging
   on: both slots read and written, ROM read, a ROM write (an MMIO write exit; the ROM
   unchanged), the hole (an MMIO read exit), SGDT into the logged slot (a callout's
   write is logged); the embedder sees its memfd change; the log is exact, cleared by a
   read and set again by the next write. */
START_TEST(two_slots_rom_hole_and_log)
{
    int fd;
    uint8_t *view;
    xbt_vm *vm = make_vm(XBT_USER_STRICT, &fd, &view);
    xbt_vcpu *cpu;
    ck_assert_int_eq(xbt_vcpu_create(vm, &cpu), XBT_OK);
    page_tables(vm);
    memcpy(view + 0x200000, "\x78\x56\x34\x12", 4); /* the embedder's bytes at 0x40200000 */
    static const uint8_t code[] = {
        0xc7, 0x05, 0x00, 0x40, 0x00, 0x40, 0x44, 0x33, 0x22, 0x11, /* mov [0x40004000], 0x11223344 (paging off) */
        0x0f, 0x20, 0xe0, 0x0d, 0x10, 0, 0, 0, 0x0f, 0x22, 0xe0,     /* cr4 |= PSE */
        0xb8, 0x00, 0x00, 0x01, 0x00, 0x0f, 0x22, 0xd8,             /* cr3 = 0x10000 */
        0x0f, 0x20, 0xc0, 0x0d, 0, 0, 0, 0x80, 0x0f, 0x22, 0xc0,     /* cr0 |= PG */
        0xc7, 0x05, 0x00, 0x10, 0x00, 0x40, 0xef, 0xbe, 0xad, 0xde, /* mov [0x40001000], 0xdeadbeef */
        0xa1, 0x00, 0x10, 0x00, 0x40, 0xe7, 0xf1,                   /* mov eax, [0x40001000]; out 0xf1 */
        0xa1, 0x00, 0x00, 0x20, 0x40, 0xe7, 0xf2,                   /* mov eax, [0x40200000]; out 0xf2 */
        0xa1, 0x00, 0x00, 0x60, 0x40, 0xe7, 0xf3,                   /* mov eax, [0x40600000] (4 MiB page) */
        0xa1, 0x10, 0x00, 0xff, 0xff, 0xe7, 0xf4,                   /* mov eax, [0xffff0010] (ROM); out */
        0xc7, 0x05, 0x20, 0x00, 0xff, 0xff, 0xbe, 0xba, 0xfe, 0xca, /* mov [0xffff0020], 0xcafebabe */
        0x0f, 0x01, 0x05, 0x40, 0x00, 0xff, 0xff,                   /* sgdt [0xffff0040] (callout) */
        0xa1, 0x20, 0x00, 0xff, 0xff, 0xe7, 0xf5,                   /* mov eax, [0xffff0020]; out */
        0xa1, 0x00, 0x00, 0x00, 0x20, 0xe7, 0xf6,                   /* mov eax, [0x20000000] (hole) */
        0x0f, 0x01, 0x05, 0x00, 0x60, 0x00, 0x40,                   /* sgdt [0x40006000] */
        0xa1, 0x00, 0x20, 0x00, 0x40,                               /* mov eax, [0x40002000] (read) */
        0xe7, 0xf7,                                                 /* out 0xf7 */
        0xc7, 0x05, 0x08, 0x10, 0x00, 0x40, 0x01, 0, 0, 0,          /* mov [0x40001008], 1 */
        0xe7, 0xf8,                                                 /* out 0xf8 */
        0xc7, 0x05, 0x0c, 0x10, 0x00, 0x40, 0x02, 0, 0, 0,          /* mov [0x4000100c], 2 */
        0xe7, 0xf9,                                                 /* out 0xf9 */
        0xa1, 0x00, 0x00, 0x80, 0xc0,                               /* mov eax, [0xc0800000] */
        0xe7, 0xfa,                                                 /* out 0xfa */
        0xf4,
    };
    ck_assert_int_eq(xbt_vm_write_phys(vm, 0x100000, code, sizeof code), XBT_OK);
    flat_kernel(vm, cpu, 0x100000);
    view[0x600000] = 0x66;
    /* 0xc0800000 through a page table in the logged slot (its page 7): the walker's
       accessed bit there is a write the log sees. */
    uint32_t e = (SLOT1_GPA + 0x7000) | 0x03;
    xbt_vm_write_phys(vm, PD + 4 * 0x302, &e, 4);
    e = (SLOT1_GPA + 0x8000) | 0x03;
    xbt_vm_write_phys(vm, SLOT1_GPA + 0x7000, &e, 4);
    expect_out(cpu, 0xf1, 0xdeadbeef);
    uint32_t v;
    memcpy(&v, view + 0x1000, 4);
    ck_assert_uint_eq(v, 0xdeadbeef); /* the embedder's memfd shows the guest's write */
    memcpy(&v, view + 0x4000, 4);
    ck_assert_uint_eq(v, 0x11223344);
    expect_out(cpu, 0xf2, 0x12345678);
    expect_out(cpu, 0xf3, 0x66);
    expect_out(cpu, 0xf4, rom_word(0x10));
    xbt_exit *ex = run(cpu);
    ck_assert_uint_eq(ex->reason, XBT_EXIT_MMIO); /* the ROM write */
    ck_assert_uint_eq(ex->mmio.gpa, ROM_GPA + 0x20);
    ck_assert_uint_eq(ex->mmio.is_write, 1);
    ck_assert_uint_eq(ex->mmio.size, 4);
    ck_assert_uint_eq(ex->mmio.data, 0xcafebabe);
    ex = run(cpu); /* a callout's store into ROM: MMIO write exits, limit then base */
    ck_assert_uint_eq(ex->reason, XBT_EXIT_MMIO);
    ck_assert_uint_eq(ex->mmio.gpa, ROM_GPA + 0x40);
    ck_assert_uint_eq(ex->mmio.is_write, 1);
    ck_assert_uint_eq(ex->mmio.size, 2);
    ck_assert_uint_eq(ex->mmio.data, 23);
    ex = run(cpu);
    ck_assert_uint_eq(ex->reason, XBT_EXIT_MMIO);
    ck_assert_uint_eq(ex->mmio.gpa, ROM_GPA + 0x42);
    ck_assert_uint_eq(ex->mmio.size, 4);
    ck_assert_uint_eq(ex->mmio.data, 0x1000);
    expect_out(cpu, 0xf5, rom_word(0x20)); /* unchanged */
    uint8_t rom[8];
    ck_assert_int_eq(xbt_vm_read_phys(vm, ROM_GPA + 0x40, rom, 6), XBT_OK);
    ck_assert_uint_eq(rom[0], (uint8_t)(0x40 * 7 + 1));
    ck_assert_uint_eq(rom[5], (uint8_t)(0x45 * 7 + 1));
    ex = run(cpu);
    ck_assert_uint_eq(ex->reason, XBT_EXIT_MMIO); /* no slot there */
    ck_assert_uint_eq(ex->mmio.gpa, 0x20000000);
    ck_assert_uint_eq(ex->mmio.is_write, 0);
    ex->mmio.data = 0x5555;
    expect_out(cpu, 0xf6, 0x5555);
    expect_out(cpu, 0xf7, 0);
    /* Written: page 4 (paging off), 1 (MOV), 6 (SGDT); page 2 only read, page 0x200
       only by the embedder, the page tables are in slot 0. */
    expect_log(vm, (const int[]){ 1, 4, 6, -1 });
    expect_log(vm, (const int[]){ -1 }); /* cleared */
    expect_out(cpu, 0xf8, 0);
    expect_log(vm, (const int[]){ 1, -1 }); /* the page was write-protected again */
    xbt_vm_write_phys(vm, SLOT1_GPA + 0x5000, "x", 1); /* the embedder's: not logged */
    expect_out(cpu, 0xf9, 0);
    expect_log(vm, (const int[]){ 1, -1 });
    expect_out(cpu, 0xfa, 0);
    expect_log(vm, (const int[]){ 7, -1 }); /* the table's page, not the page read */
    memcpy(&v, view + 0x7000, 4);
    ck_assert_uint_eq(v & 0x20, 0x20);      /* A set */
    ck_assert_uint_eq(run(cpu)->reason, XBT_EXIT_HLT);
    memcpy(&v, view + 0x100c, 4);
    ck_assert_uint_eq(v, 2);
    xbt_vm_destroy(vm);
    munmap(view, SLOT1_SIZE);
    close(fd);
}
END_TEST

/* Guest user code (CPL 3, paging on) writes pages of the logged slot, with system calls
   between (int 0x80 -> out 0xf1, al; iret) at which the log is read: exact sets, in the
   given user mode.  Returns the direct entries. */
static uint64_t user_log_case(uint32_t mode)
{
    int fd;
    uint8_t *view;
    xbt_vm *vm = make_vm(mode, &fd, &view);
    xbt_vcpu *cpu;
    ck_assert_int_eq(xbt_vcpu_create(vm, &cpu), XBT_OK);
    page_tables(vm);
    uint64_t gdt[6] = { 0, 0x00cf9a000000ffffull, 0x00cf92000000ffffull,
                        0x00cffa000000ffffull, 0x00cff2000000ffffull, 0 };
    uint32_t tss[26] = { 0 };
    tss[1] = 0x90000;
    tss[2] = 0x10;
    tss[25] = 0xffff0000u;
    gdt[5] = 0x0000890040000067ull; /* TSS at 0x4000, limit 103 */
    xbt_vm_write_phys(vm, 0x1000, gdt, sizeof gdt);
    xbt_vm_write_phys(vm, 0x4000, tss, sizeof tss);
    const uint8_t sys[] = { 0xe6, 0xf1, 0xcf }; /* out 0xf1, al; iret */
    xbt_vm_write_phys(vm, 0x200000, sys, sizeof sys);
    uint64_t idt[256] = { 0 };
    idt[0x80] = 0x200000u % 0x10000 | (0x08ull << 16) | (0xeeull << 40) | (0x20ull << 48);
    xbt_vm_write_phys(vm, 0x2000, idt, sizeof idt);
    static const uint8_t user[] = {
        0xc7, 0x05, 0x00, 0x10, 0x00, 0x40, 0x01, 0, 0, 0, /* mov [0x40001000], 1 */
        0xc7, 0x05, 0x00, 0x30, 0x00, 0x40, 0x02, 0, 0, 0, /* mov [0x40003000], 2 */
        0xa1, 0x00, 0x50, 0x00, 0x40,                      /* mov eax, [0x40005000] */
        0xb8, 0x01, 0, 0, 0, 0xcd, 0x80,                   /* int 0x80 (1) */
        0xc7, 0x05, 0x04, 0x10, 0x00, 0x40, 0x03, 0, 0, 0, /* mov [0x40001004], 3 */
        0xb8, 0x02, 0, 0, 0, 0xcd, 0x80,                   /* int 0x80 (2) */
        0xa1, 0x00, 0x30, 0x00, 0x40,                      /* mov eax, [0x40003000]: its */
        0xa3, 0x04, 0x30, 0x00, 0x40,                      /* D bit is set: the write after */
        0xc7, 0x05, 0x00, 0x50, 0x00, 0x40, 0x04, 0, 0, 0, /* mov [0x40005000], 4 */
        0xc7, 0x05, 0x00, 0x00, 0x70, 0x40, 0x05, 0, 0, 0, /* mov [0x40700000], 5 (4 MiB page) */
        0xb8, 0x03, 0, 0, 0, 0xcd, 0x80,                   /* int 0x80 (3) */
        0xb8, 0x04, 0, 0, 0, 0xcd, 0x80,                   /* int 0x80 (4): nothing written */
        0xc7, 0x05, 0x20, 0x00, 0xff, 0xff, 0x99, 0, 0, 0, /* mov [0xffff0020], 0x99 (ROM) */
        0xa1, 0x20, 0x00, 0xff, 0xff,                      /* mov eax, [0xffff0020] */
        0xcd, 0x80,                                        /* int 0x80 (ROM's bytes) */
        0xc7, 0x05, 0x00, 0x20, 0x00, 0x40, 0x07, 0, 0, 0, /* mov [0x40002000], 7 */
        0xb8, 0x06, 0, 0, 0, 0xcd, 0x80,                   /* int 0x80 (6) */
        0xeb, 0xfe,
    };
    xbt_vm_write_phys(vm, 0x400000, user, sizeof user);
    xbt_sregs s;
    xbt_vcpu_get_sregs(cpu, &s);
    xbt_segment *segs[] = { &s.cs, &s.ss, &s.ds, &s.es, &s.fs, &s.gs };
    for (int i = 0; i < 6; i++) {
        memset(segs[i], 0, sizeof *segs[i]);
        *segs[i] = (xbt_segment){ 0, 0xFFFFFFFFu, (uint16_t)(i ? 0x23 : 0x1b),
                                  (uint8_t)(i ? 3 : 0xb), 1, 3, 1, 1, 1, 0, 0 };
    }
    s.tr = (xbt_segment){ 0x4000, 103, 0x28, 0xb, 0, 0, 1, 0, 0, 0, 0 };
    s.gdt = (xbt_dtable){ 0x1000, 47 };
    s.idt = (xbt_dtable){ 0x2000, 0x7ff };
    s.cr3 = PD;
    s.cr4 = 0x10 | 0x600; /* PSE; OSFXSR, OSXMMEXCPT: user code may run directly */
    s.cr0 |= 0x80000001u;
    ck_assert_int_eq(xbt_vcpu_set_sregs(cpu, &s), XBT_OK);
    xbt_regs r = { 0, 0, 0, 0, 0x80000, 0, 0, 0, 0x400000, 0x202 };
    ck_assert_int_eq(xbt_vcpu_set_regs(cpu, &r), XBT_OK);
    expect_out(cpu, 0xf1, 1);
    expect_log(vm, (const int[]){ 1, 3, -1 });
    expect_out(cpu, 0xf1, 2);
    expect_log(vm, (const int[]){ 1, -1 });
    expect_out(cpu, 0xf1, 3);
    expect_log(vm, (const int[]){ 3, 5, 0x700, -1 }); /* the read did not map 3 writable */
    expect_out(cpu, 0xf1, 4);
    expect_log(vm, (const int[]){ -1 });
    /* Slot 1 set again (the same file): the runner that mapped it ends, a new one
       starts with the new descriptors, the log starts clean. */
    xbt_mem_region r1 = { 1, XBT_MEM_LOG_DIRTY, SLOT1_GPA, SLOT1_SIZE, fd, 0, 0x3000 };
    ck_assert_int_eq(xbt_vm_set_mem_region(vm, &r1), XBT_OK);
    xbt_exit *ex = run(cpu); /* user code writing ROM: an MMIO write exit in every mode */
    ck_assert_uint_eq(ex->reason, XBT_EXIT_MMIO);
    ck_assert_uint_eq(ex->mmio.gpa, ROM_GPA + 0x20);
    ck_assert_uint_eq(ex->mmio.is_write, 1);
    ck_assert_uint_eq(ex->mmio.size, 4);
    ck_assert_uint_eq(ex->mmio.data, 0x99);
    expect_out(cpu, 0xf1, rom_word(0x20) & 0xff);
    expect_out(cpu, 0xf1, 6);
    expect_log(vm, (const int[]){ 2, -1 });
    ck_assert_uint_eq(view[0x2000], 7);
    uint32_t v;
    memcpy(&v, view + 0x700000, 4);
    ck_assert_uint_eq(v, 5);
    memcpy(&v, view + 0x1004, 4);
    ck_assert_uint_eq(v, 3);
    memcpy(&v, view + 0x3004, 4);
    ck_assert_uint_eq(v, 2);
    xbt_stats st = XBT_STATS_INIT;
    xbt_vcpu_get_stats(cpu, &st);
    printf("user dirty log, mode %u (in effect %u): %llu direct entries, %llu runner "
           "starts\n", mode, xbt_vm_user_mode(vm, NULL), (unsigned long long)st.direct_entries,
           (unsigned long long)st.direct_runner_starts);
    if (mode != XBT_USER_STRICT && xbt_vm_user_mode(vm, NULL) == mode) {
        ck_assert_uint_gt(st.direct_entries, 0);
        ck_assert_uint_ge(st.direct_runner_starts, 2); /* restarted at the slot change */
        if (!getenv("XBT_RUNNER_CPU")) /* "same": each new runner to the vCPU's CPU */
            ck_assert_uint_ge(st.direct_runner_moves, 2);
    }
    xbt_vm_destroy(vm);
    munmap(view, SLOT1_SIZE);
    close(fd);
    return st.direct_entries;
}

START_TEST(user_dirty_log_strict)
{
    ck_assert_uint_eq(user_log_case(XBT_USER_STRICT), 0);
}
END_TEST

/* Also: while the vCPU thread runs guest code directly it is held on its host CPU, with
   its runner (XBT_RUNNER_CPU "same"); each return to the embedder gives the thread back
   the affinity it came with. */
START_TEST(user_dirty_log_direct)
{
    cpu_set_t before, after;
    ck_assert_int_eq(sched_getaffinity(0, sizeof before, &before), 0);
    uint64_t entries = user_log_case(XBT_USER_DIRECT);
    ck_assert_int_eq(sched_getaffinity(0, sizeof after, &after), 0);
    ck_assert_msg(CPU_EQUAL(&before, &after), "the embedder's thread left pinned: %d CPUs "
                  "allowed before, %d after", CPU_COUNT(&before), CPU_COUNT(&after));
    if (!entries)
        printf("SKIP: no direct execution on this host, the affinity check is idle\n");
}
END_TEST

START_TEST(user_dirty_log_adaptive)
{
    setenv("XBT_ADAPT_TICKS", "0", 1); /* promoted at once: runs directly */
    user_log_case(XBT_USER_ADAPTIVE);
    unsetenv("XBT_ADAPT_TICKS");
}
END_TEST

/* Between runs the slot under running code's data is replaced, then deleted: the
   guest sees the new bytes (no window keeps the old file), then MMIO. */
START_TEST(slot_replaced_between_runs)
{
    int fd;
    uint8_t *view;
    xbt_vm *vm = make_vm(XBT_USER_STRICT, &fd, &view);
    xbt_vcpu *cpu;
    ck_assert_int_eq(xbt_vcpu_create(vm, &cpu), XBT_OK);
    page_tables(vm);
    static const uint8_t code[] = {
        0x0f, 0x20, 0xe0, 0x0d, 0x10, 0, 0, 0, 0x0f, 0x22, 0xe0, /* cr4 |= PSE */
        0xb8, 0x00, 0x00, 0x01, 0x00, 0x0f, 0x22, 0xd8,         /* cr3 = 0x10000 */
        0x0f, 0x20, 0xc0, 0x0d, 0, 0, 0, 0x80, 0x0f, 0x22, 0xc0, /* cr0 |= PG */
        0xa1, 0x00, 0x10, 0x00, 0x40, 0xe7, 0xf1,               /* l: mov eax, [0x40001000]; out */
        0xa3, 0x00, 0x20, 0x00, 0x40,                           /* mov [0x40002000], eax */
        0xeb, 0xf2,                                             /* jmp l */
    };
    xbt_vm_write_phys(vm, 0x100000, code, sizeof code);
    flat_kernel(vm, cpu, 0x100000);
    memcpy(view + 0x1000, "\x01\x00\x00\x00", 4);
    expect_out(cpu, 0xf1, 1);
    expect_out(cpu, 0xf1, 1);
    int fd2 = embedder_memfd(SLOT1_SIZE);
    uint8_t *v2 = mmap(NULL, SLOT1_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd2, 0);
    ck_assert_ptr_ne(v2, MAP_FAILED);
    memcpy(v2 + 0x1000, "\x02\x00\x00\x00", 4);
    xbt_mem_region r1 = { 1, 0, SLOT1_GPA, SLOT1_SIZE, fd2, 0, 0 };
    ck_assert_int_eq(xbt_vm_set_mem_region(vm, &r1), XBT_OK);
    ck_assert_uint_eq(xbt_vm_mem_host(vm, 1)[0x1000], 2);
    expect_out(cpu, 0xf1, 2);
    expect_out(cpu, 0xf1, 2);
    ck_assert_uint_eq(v2[0x2000], 2); /* the write went to the new file */
    ck_assert_uint_eq(view[0x2000], 1); /* not to the old one */
    uint64_t bm[32];
    ck_assert_int_eq(xbt_vm_get_dirty_log(vm, 1, bm), XBT_E_INVAL); /* no log now */
    xbt_mem_region del = { 1, 0, 0, 0, -1, 0, 0 };
    ck_assert_int_eq(xbt_vm_set_mem_region(vm, &del), XBT_OK);
    ck_assert_ptr_eq(xbt_vm_mem_host(vm, 1), NULL);
    xbt_exit *ex = run(cpu); /* the store after the OUT, then the load: both MMIO now */
    ck_assert_uint_eq(ex->reason, XBT_EXIT_MMIO);
    ck_assert_uint_eq(ex->mmio.gpa, SLOT1_GPA + 0x2000);
    ck_assert_uint_eq(ex->mmio.is_write, 1);
    ck_assert_uint_eq(ex->mmio.data, 2);
    ex = run(cpu);
    ck_assert_uint_eq(ex->reason, XBT_EXIT_MMIO);
    ck_assert_uint_eq(ex->mmio.gpa, SLOT1_GPA + 0x1000);
    ck_assert_uint_eq(ex->mmio.is_write, 0);
    ex->mmio.data = 3;
    expect_out(cpu, 0xf1, 3);
    xbt_vm_destroy(vm);
    munmap(view, SLOT1_SIZE);
    munmap(v2, SLOT1_SIZE);
    close(fd);
    close(fd2);
}
END_TEST

/* A hostile guest whose tables point between slots and past them, with 4 KiB and large
   pages, reading and writing: MMIO exits, never a host fault; page tables themselves
   outside every slot: an internal error that says so. */
START_TEST(tables_between_slots)
{
    int fd;
    uint8_t *view;
    xbt_vm *vm = make_vm(XBT_USER_STRICT, &fd, &view);
    xbt_vcpu *cpu;
    ck_assert_int_eq(xbt_vcpu_create(vm, &cpu), XBT_OK);
    page_tables(vm);
    uint32_t pde = (SLOT1_GPA + SLOT1_SIZE) | 0x83; /* a 4 MiB page just past slot 1 */
    xbt_vm_write_phys(vm, PD + 4 * 0x300, &pde, 4);  /* at 0xC0000000 */
    uint32_t pte = (ROM_GPA - 0x1000) | 0x03;       /* the page below the ROM */
    xbt_vm_write_phys(vm, PTROM + 4 * 1007, &pte, 4);
    pde = 0x30000000u | 0x03;                       /* a page table in the hole */
    xbt_vm_write_phys(vm, PD + 4 * 0x301, &pde, 4); /* at 0xC0400000 */
    pde = (1u << 13) | 0x83;                        /* PSE-36: 4 MiB page at 4 GiB */
    xbt_vm_write_phys(vm, PD + 4 * 0x303, &pde, 4); /* at 0xC0C00000 */
    static const uint8_t code[] = {
        0x0f, 0x20, 0xe0, 0x0d, 0x10, 0, 0, 0, 0x0f, 0x22, 0xe0,
        0xb8, 0x00, 0x00, 0x01, 0x00, 0x0f, 0x22, 0xd8,
        0x0f, 0x20, 0xc0, 0x0d, 0, 0, 0, 0x80, 0x0f, 0x22, 0xc0,
        0xa1, 0x08, 0x00, 0x00, 0xc0,                   /* mov eax, [0xc0000008] */
        0xa3, 0x00, 0xf0, 0xfe, 0xff,                   /* mov [0xfffef000], eax */
        0xbf, 0x00, 0x00, 0x00, 0xc0,                   /* mov edi, 0xc0000000 */
        0xab,                                           /* stosd */
        0xa1, 0x10, 0x00, 0xc0, 0xc0,                   /* mov eax, [0xc0c00010] */
        0xa1, 0x00, 0x00, 0x40, 0xc0,                   /* mov eax, [0xc0400000] */
        0xf4,
    };
    xbt_vm_write_phys(vm, 0x100000, code, sizeof code);
    flat_kernel(vm, cpu, 0x100000);
    xbt_exit *ex = run(cpu);
    ck_assert_uint_eq(ex->reason, XBT_EXIT_MMIO);
    ck_assert_uint_eq(ex->mmio.gpa, SLOT1_GPA + SLOT1_SIZE + 8);
    ck_assert_uint_eq(ex->mmio.is_write, 0);
    ex->mmio.data = 0x77;
    ex = run(cpu);
    ck_assert_uint_eq(ex->reason, XBT_EXIT_MMIO);
    ck_assert_uint_eq(ex->mmio.gpa, ROM_GPA - 0x1000);
    ck_assert_uint_eq(ex->mmio.is_write, 1);
    ck_assert_uint_eq(ex->mmio.data, 0x77);
    ex = run(cpu);
    ck_assert_uint_eq(ex->reason, XBT_EXIT_MMIO); /* STOS */
    ck_assert_uint_eq(ex->mmio.gpa, SLOT1_GPA + SLOT1_SIZE);
    ck_assert_uint_eq(ex->mmio.is_write, 1);
    ex = run(cpu);
    ck_assert_uint_eq(ex->reason, XBT_EXIT_MMIO); /* above 4 GiB: never a slot */
    ck_assert_uint_eq(ex->mmio.gpa, 0x100000010ull);
    ck_assert_uint_eq(ex->mmio.is_write, 0);
    ck_assert_int_eq(xbt_vcpu_run(cpu, &ex), XBT_OK);
    ck_assert_uint_eq(ex->reason, XBT_EXIT_INTERNAL_ERROR);
    ck_assert_ptr_ne(strstr(ex->internal.message, "not in RAM"), NULL);
    xbt_vm_destroy(vm);
    munmap(view, SLOT1_SIZE);
    close(fd);
}
END_TEST

/* What the API refuses, and what it accepts at the edges. */
START_TEST(bad_regions_refused)
{
    xbt_vm_config c = XBT_VM_CONFIG_INIT;
    c.ram_size = 0; /* no RAM until slots come */
    xbt_vm *vm;
    ck_assert_int_eq(xbt_vm_create(&c, &vm), XBT_OK);
    ck_assert_ptr_eq(xbt_vm_ram(vm), NULL);
    ck_assert_uint_eq(xbt_vm_ram_size(vm), 0);
    uint8_t b[8];
    ck_assert_int_eq(xbt_vm_read_phys(vm, 0, b, 1), XBT_E_INVAL);
    xbt_mem_region ok = { 0, 0, 0x100000, 0x100000, -1, 0, 0 };
    ck_assert_int_eq(xbt_vm_set_mem_region(vm, &ok), XBT_OK);
    ck_assert_uint_eq(xbt_vm_ram_size(vm), 0x100000);
    ck_assert_ptr_eq(xbt_vm_ram(vm), xbt_vm_mem_host(vm, 0));
    ck_assert_int_eq(xbt_vm_read_phys(vm, 0x1ffff8, b, 8), XBT_OK);
    ck_assert_int_eq(xbt_vm_read_phys(vm, 0x1ffff8, b, 9), XBT_E_INVAL); /* past the slot */
    ck_assert_int_eq(xbt_vm_read_phys(vm, 0xff000, b, 8), XBT_E_INVAL);  /* before it */
    xbt_mem_region next = { 3, 0, 0x200000, 0x1000, -1, 0, 0 };       /* adjacent */
    ck_assert_int_eq(xbt_vm_set_mem_region(vm, &next), XBT_OK);
    ck_assert_int_eq(xbt_vm_write_phys(vm, 0x1ffffc, "abcdefgh", 8), XBT_OK);
    ck_assert_int_eq(xbt_vm_read_phys(vm, 0x1ffffc, b, 8), XBT_OK);   /* across slots */
    ck_assert_int_eq(memcmp(b, "abcdefgh", 8), 0);
    ck_assert_int_eq(memcmp(xbt_vm_mem_host(vm, 3), "efgh", 4), 0);
    ck_assert_int_eq(xbt_vm_read_phys(vm, 0x200ffc, b, 8), XBT_E_INVAL);
    next.size = 0;
    ck_assert_int_eq(xbt_vm_set_mem_region(vm, &next), XBT_OK);
    const xbt_mem_region bad[] = {
        { 1, 0, 0x180000, 0x100000, -1, 0, 0 },        /* overlaps slot 0 */
        { 1, 0, 0x080000, 0x100000, -1, 0, 0 },        /* overlaps its start */
        { 1, 0, 0x200800, 0x1000, -1, 0, 0 },          /* gpa not aligned */
        { 1, 0, 0x300000, 0x1800, -1, 0, 0 },          /* size not a page multiple */
        { 1, 0, 0xfffff000, 0x2000, -1, 0, 0 },        /* reaches 4 GiB */
        { 1, 0, 0x100000000ull, 0x1000, -1, 0, 0 },    /* above 4 GiB (PAE) */
        { 1, 0, 0x1000, 0xffffffffffff000ull, -1, 0, 0 }, /* wraps */
        { XBT_MAX_MEM_SLOTS, 0, 0x300000, 0x1000, -1, 0, 0 }, /* no such slot */
        { 1, 4, 0x300000, 0x1000, -1, 0, 0 },          /* unknown flag */
        { 1, 0, 0x300000, 0x1000, -1, 1, 0 },          /* pad */
        { 1, 0, 0x300000, 0x1000, -2, 0, 0 },          /* bad fd */
        { 1, 0, 0x300000, 0x1000, 999, 0, 0 },         /* not open */
        { 1, 0, 0x300000, 0x1000, -1, 0, 0x1000 },     /* fd_offset without fd */
    };
    for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(xbt_vm_set_mem_region(vm, &bad[i]) == XBT_E_INVAL, "case %u", i);
    int small = embedder_memfd(0x2000);
    xbt_mem_region r = { 1, 0, 0x300000, 0x3000, small, 0, 0 };
    ck_assert_int_eq(xbt_vm_set_mem_region(vm, &r), XBT_E_INVAL); /* file too small */
    r.size = 0x1000;
    r.fd_offset = 0x1800;
    ck_assert_int_eq(xbt_vm_set_mem_region(vm, &r), XBT_E_INVAL); /* offset not aligned */
    r.fd_offset = 0x2000;
    ck_assert_int_eq(xbt_vm_set_mem_region(vm, &r), XBT_E_INVAL); /* past its end */
    r.fd_offset = 0x1000;
    ck_assert_int_eq(xbt_vm_set_mem_region(vm, &r), XBT_OK);
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    r.slot = 2, r.gpa = 0x400000, r.fd = p[0], r.fd_offset = 0;
    ck_assert_int_eq(xbt_vm_set_mem_region(vm, &r), XBT_E_INVAL); /* not a regular file */
    char path[] = "/tmp/xbt-slot-XXXXXX";
    int rw = mkstemp(path);
    ck_assert_int_ge(rw, 0);
    ck_assert_int_eq(ftruncate(rw, 0x1000), 0);
    int ro = open(path, O_RDONLY | O_CLOEXEC);
    unlink(path);
    r.fd = ro;
    ck_assert_int_eq(xbt_vm_set_mem_region(vm, &r), XBT_E_INVAL); /* read-only descriptor */
    r.fd = rw;
    ck_assert_int_eq(xbt_vm_set_mem_region(vm, &r), XBT_OK);     /* a plain file works */
    close(p[0]), close(p[1]), close(ro), close(rw), close(small);
    /* The library's dup keeps the files: closing the embedder's does not matter. */
    ck_assert_int_eq(xbt_vm_write_phys(vm, 0x400000, "abc", 3), XBT_OK);
    ck_assert_int_eq(xbt_vm_read_phys(vm, 0x400000, b, 3), XBT_OK);
    ck_assert_int_eq(memcmp(b, "abc", 3), 0);
    uint64_t bm[1];
    ck_assert_int_eq(xbt_vm_get_dirty_log(vm, 1, bm), XBT_E_INVAL); /* not logged */
    ck_assert_int_eq(xbt_vm_get_dirty_log(vm, 5, bm), XBT_E_INVAL); /* not in use */
    ck_assert_int_eq(xbt_vm_get_dirty_log(vm, 99, bm), XBT_E_INVAL);
    ck_assert_int_eq(xbt_vm_get_dirty_log(NULL, 0, bm), XBT_E_INVAL);
    ck_assert_int_eq(xbt_vm_set_mem_region(NULL, &ok), XBT_E_INVAL);
    ck_assert_int_eq(xbt_vm_set_mem_region(vm, NULL), XBT_E_INVAL);
    ck_assert_ptr_eq(xbt_vm_mem_host(vm, 99), NULL);
    ck_assert_ptr_eq(xbt_vm_mem_host(NULL, 0), NULL);
    /* Flags-only change keeps the bytes and starts a clean log. */
    xbt_vm_write_phys(vm, 0x100000, "keep", 4);
    ok.flags = XBT_MEM_LOG_DIRTY;
    ck_assert_int_eq(xbt_vm_set_mem_region(vm, &ok), XBT_OK);
    ck_assert_int_eq(memcmp(xbt_vm_mem_host(vm, 0), "keep", 4), 0);
    ck_assert_int_eq(xbt_vm_get_dirty_log(vm, 0, bm), XBT_OK);
    ck_assert_uint_eq(bm[0], 0);
    ck_assert_int_eq(xbt_vm_get_dirty_log(vm, 0, NULL), XBT_E_INVAL);
    /* Deleting a slot that is not there does nothing. */
    xbt_mem_region del = { 7, 0, 0, 0, -1, 0, 0 };
    ck_assert_int_eq(xbt_vm_set_mem_region(vm, &del), XBT_OK);
    xbt_vm_destroy(vm);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("memslots");
    TCase *tc = tcase_create("slots");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, bad_regions_refused);
    tcase_add_test(tc, two_slots_rom_hole_and_log);
    tcase_add_test(tc, slot_replaced_between_runs);
    tcase_add_test(tc, tables_between_slots);
    tcase_add_test(tc, user_dirty_log_strict);
    tcase_add_test(tc, user_dirty_log_direct);
    tcase_add_test(tc, user_dirty_log_adaptive);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
