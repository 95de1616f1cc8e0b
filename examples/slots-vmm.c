/*
 * slots-vmm.c - an embedder of xbt the size of a small kvmtool: a machine made of memory
 * slots, its exit loop, and a save/restore in the middle of the guest's work.  Public
 * API only (include/xbt/xbt.h), written as one would against linux/kvm.h.
 *
 * The machine:
 *   slot 0  RAM, 1 MiB at 0, the library's memory, with a dirty log
 *   slot 1  RAM, 64 KiB at 0x40000000, the embedder's own memfd (a table it fills)
 *   slot 2  ROM, 64 KiB at 0xffff0000: the guest's code
 *   0xd0000000  a device register (no slot there: MMIO exits)
 *   port 0x500  progress: the guest reports each step; port 0x501 its result
 * The guest (flat protected mode, the vCPU's initial state) sums the 1024 words of the
 * table, storing each running sum into RAM at 0x1000 and reporting the step, then adds
 * the device's value, tries to store the result into its ROM (an MMIO write exit: the
 * ROM keeps its bytes) and sends the result.
 *
 * Halfway, the embedder saves the whole machine into a file (the library's stream, then
 * its own few bytes), throws the VM away, builds a new one with the same slots,
 * restores the file into it and lets the guest finish.  It checks the result against
 * the sum it computes itself, the dirty log of slot 0 and the ROM's bytes.
 *
 * Usage: slots-vmm [strict|direct|adaptive]     (exit status 0 when all checks hold)
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <xbt/xbt.h>

#define TABLE_GPA 0x40000000u
#define TABLE_SIZE 0x10000u
#define TABLE_WORDS 1024u
#define ROM_GPA 0xffff0000u
#define ROM_SIZE 0x10000u
#define DEVICE_GPA 0xd0000000u
#define DEVICE_VALUE 0x1234abcdu
#define PROGRESS_PORT 0x500
#define RESULT_PORT 0x501

/* The guest's code (as --32 of the loop described above; objdump -D -b binary -m i386
   shows it). */
static const uint8_t guest_code[] = {
    0xbc, 0x00, 0x00, 0x08, 0x00,             /* mov esp, 0x80000 */
    0xbe, 0x00, 0x00, 0x00, 0x40,             /* mov esi, 0x40000000 (the table) */
    0x31, 0xdb, 0x31, 0xc9,                   /* xor ebx, ebx; xor ecx, ecx */
    0x03, 0x1c, 0x8e,                         /* 1: add ebx, [esi + ecx*4] */
    0x89, 0x1c, 0x8d, 0x00, 0x10, 0x00, 0x00, /* mov [0x1000 + ecx*4], ebx */
    0x89, 0xc8, 0x66, 0xba, 0x00, 0x05, 0xef, /* mov eax, ecx; mov dx, 0x500; out dx, eax */
    0x41, 0x81, 0xf9, 0x00, 0x04, 0x00, 0x00, /* inc ecx; cmp ecx, 1024 */
    0x72, 0xe6,                               /* jb 1b */
    0xa1, 0x00, 0x00, 0x00, 0xd0,             /* mov eax, [0xd0000000] (the device) */
    0x01, 0xc3,                               /* add ebx, eax */
    0x89, 0x1d, 0x00, 0x80, 0xff, 0xff,       /* mov [0xffff8000], ebx (ROM) */
    0x89, 0xd8, 0x66, 0xba, 0x01, 0x05, 0xef, /* mov eax, ebx; mov dx, 0x501; out dx, eax */
    0xfa, 0xf4,                               /* cli; hlt */
};

/* What the embedder keeps besides the VM: its device's state, saved after the library's
   stream in the same file. */
struct machine {
    xbt_vm *vm;
    xbt_vcpu *cpu;
    int table_fd;              /* slot 1's file: the embedder's memory */
    uint32_t *table;           /* its view of it */
    uint32_t steps, result, rom_writes;
};

static int fail(const char *what, xbt_status st)
{
    fprintf(stderr, "slots-vmm: %s: %s\n", what, xbt_strerror(st));
    return 1;
}

/* A VM with the three slots and a vCPU; the guest's entry in ROM. */
static int machine_build(struct machine *m, uint32_t user_mode)
{
    xbt_vm_config cfg = XBT_VM_CONFIG_INIT;
    cfg.ram_size = 1u << 20;   /* slot 0 */
    cfg.user_mode = user_mode;
    xbt_status st = xbt_vm_create(&cfg, &m->vm);
    if (st != XBT_OK)
        return fail("xbt_vm_create", st);
    const xbt_mem_region regions[] = {
        { .slot = 0, .flags = XBT_MEM_LOG_DIRTY, .gpa = 0, .size = 1u << 20, .fd = -1 },
        { .slot = 1, .gpa = TABLE_GPA, .size = TABLE_SIZE, .fd = m->table_fd },
        { .slot = 2, .flags = XBT_MEM_READONLY, .gpa = ROM_GPA, .size = ROM_SIZE, .fd = -1 },
    };
    for (size_t i = 0; i < sizeof regions / sizeof regions[0]; i++)
        if ((st = xbt_vm_set_mem_region(m->vm, &regions[i])) != XBT_OK)
            return fail("xbt_vm_set_mem_region", st);
    if ((st = xbt_vm_write_phys(m->vm, ROM_GPA, guest_code, sizeof guest_code)) != XBT_OK ||
        (st = xbt_vcpu_create(m->vm, &m->cpu)) != XBT_OK)
        return fail("loading the guest", st);
    xbt_regs r;
    xbt_vcpu_get_regs(m->cpu, &r);
    r.eip = ROM_GPA;
    return xbt_vcpu_set_regs(m->cpu, &r) == XBT_OK ? 0 : fail("set_regs", XBT_E_INVAL);
}

static void machine_free(struct machine *m)
{
    if (m->cpu)
        xbt_vcpu_destroy(m->cpu);
    if (m->vm)
        xbt_vm_destroy(m->vm);
    m->cpu = NULL;
    m->vm = NULL;
}

/* Runs until HLT (returns 0), or until the guest reports step `stop_at` (returns 1);
   -1 on anything unexpected. */
static int machine_run(struct machine *m, uint32_t stop_at)
{
    for (;;) {
        xbt_exit *ex;
        if (xbt_vcpu_run(m->cpu, &ex) != XBT_OK)
            return -1;
        switch (ex->reason) {
        case XBT_EXIT_IO:
            if (ex->io.is_in || ex->io.size != 4)
                break;
            if (ex->io.port == PROGRESS_PORT) {
                m->steps++;
                if (ex->io.data == stop_at)
                    return 1;   /* an OUT is complete at its exit: a point to save at */
                continue;
            }
            if (ex->io.port == RESULT_PORT) {
                m->result = ex->io.data;
                continue;
            }
            break;
        case XBT_EXIT_MMIO:
            if (!ex->mmio.is_write && ex->mmio.gpa == DEVICE_GPA && ex->mmio.size == 4) {
                ex->mmio.data = DEVICE_VALUE;   /* the read completes at the next run */
                continue;
            }
            if (ex->mmio.is_write && ex->mmio.gpa >= ROM_GPA) {
                m->rom_writes++;                /* a write to ROM: dropped here */
                continue;
            }
            break;
        case XBT_EXIT_HLT:
            return 0;
        }
        fprintf(stderr, "slots-vmm: unexpected exit %u\n", ex->reason);
        return -1;
    }
}

/* The machine into fd: the library's stream, then the embedder's own state. */
static int machine_save(struct machine *m, int fd)
{
    xbt_status st = xbt_vm_save_state(m->vm, fd);
    if (st != XBT_OK) {
        fprintf(stderr, "slots-vmm: save: %s\n", xbt_state_error());
        return 1;
    }
    uint32_t mine[3] = { m->steps, m->result, m->rom_writes };
    return write(fd, mine, sizeof mine) == (ssize_t)sizeof mine ? 0 : 1;
}

static int machine_restore(struct machine *m, int fd)
{
    xbt_status st = xbt_vm_restore_state(m->vm, fd);
    if (st != XBT_OK) {
        fprintf(stderr, "slots-vmm: restore: %s\n", xbt_state_error());
        return 1;
    }
    uint32_t mine[3];
    if (read(fd, mine, sizeof mine) != (ssize_t)sizeof mine)
        return 1;
    m->steps = mine[0];
    m->result = mine[1];
    m->rom_writes = mine[2];
    return 0;
}

int main(int argc, char **argv)
{
    if (!XBT_API_COMPATIBLE(xbt_api_version())) {
        fprintf(stderr, "slots-vmm: the library's API %#x does not serve this header (%#x)\n",
                xbt_api_version(), XBT_API_VERSION);
        return 1;
    }
    uint32_t mode = XBT_USER_ADAPTIVE;
    if (argc > 1)
        mode = !strcmp(argv[1], "strict") ? XBT_USER_STRICT
             : !strcmp(argv[1], "direct") ? XBT_USER_DIRECT : XBT_USER_ADAPTIVE;

    /* The embedder's memory: a memfd it fills and the guest reads. */
    struct machine m = { .table_fd = memfd_create("slots-vmm-table", MFD_CLOEXEC) };
    if (m.table_fd < 0 || ftruncate(m.table_fd, TABLE_SIZE) != 0)
        return fail("memfd", XBT_E_HOST);
    m.table = mmap(NULL, TABLE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, m.table_fd, 0);
    if (m.table == MAP_FAILED)
        return fail("mmap", XBT_E_HOST);
    uint32_t expect = 0;
    for (uint32_t i = 0; i < TABLE_WORDS; i++) {
        m.table[i] = i * 2654435761u;
        expect += m.table[i];
    }
    uint32_t sum_at_save = 0;
    for (uint32_t i = 0; i < TABLE_WORDS / 2; i++)
        sum_at_save += m.table[i];
    expect += DEVICE_VALUE;

    /* Run to the middle, save, drop the VM. */
    int state_fd = memfd_create("slots-vmm-state", MFD_CLOEXEC);
    if (state_fd < 0 || machine_build(&m, mode) || machine_run(&m, TABLE_WORDS / 2 - 1) != 1 ||
        machine_save(&m, state_fd))
        return 1;
    printf("slots-vmm: saved after step %u of %u (%ld bytes of state)\n", m.steps,
           TABLE_WORDS, (long)lseek(state_fd, 0, SEEK_CUR));
    machine_free(&m);

    /* The embedder's table changes meanwhile: the guest must not see that (the saved
       state holds the slot's bytes), so it is put back only by the restore. */
    memset(m.table, 0xff, TABLE_SIZE);

    /* A new VM with the same slots, the state restored, the rest of the work. */
    if (machine_build(&m, mode) || lseek(state_fd, 0, SEEK_SET) != 0 ||
        machine_restore(&m, state_fd) || machine_run(&m, ~0u) != 0)
        return 1;

    uint64_t dirty[(1u << 20) / 4096 / 64];
    uint32_t rom_word, saved_sum;
    int ok = xbt_vm_get_dirty_log(m.vm, 0, dirty) == XBT_OK &&
             xbt_vm_read_phys(m.vm, ROM_GPA + 0x8000, &rom_word, 4) == XBT_OK &&
             xbt_vm_read_phys(m.vm, 0x1000 + 4 * (TABLE_WORDS / 2 - 1), &saved_sum, 4) ==
                 XBT_OK;
    /* After the restore the guest wrote running sums 512..1023: page 1 of slot 0 only. */
    int dirty_ok = ok && dirty[0] == 2;
    for (size_t i = 1; i < sizeof dirty / sizeof dirty[0]; i++)
        dirty_ok = dirty_ok && dirty[i] == 0;
    printf("slots-vmm: result %#x (expected %#x), %u steps, %u ROM write%s, ROM word %#x, "
           "running sum at the save %#x (expected %#x), dirty pages of slot 0 %s\n",
           m.result, expect, m.steps, m.rom_writes, m.rom_writes == 1 ? "" : "s", rom_word,
           saved_sum, sum_at_save, dirty_ok ? "{1}" : "wrong");
    int good = ok && dirty_ok && m.result == expect && m.steps == TABLE_WORDS &&
               m.rom_writes == 1 && rom_word == 0 && saved_sum == sum_at_save &&
               m.table[0] == 0 && m.table[1] == 2654435761u;
    machine_free(&m);
    puts(good ? "slots-vmm: all checks hold" : "slots-vmm: FAILED");
    return good ? 0 : 1;
}
