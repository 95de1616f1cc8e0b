/*
 * mini-vmm.c - the smallest embedder of xbt: a VM, a vCPU and the exit loop, with the
 * public API only (include/xbt/xbt.h), as one would write it against linux/kvm.h.
 *
 * The guest is a few hand-assembled 32-bit instructions (flat protected mode, the
 * vCPU's initial state): REP OUTSB of a greeting to a serial port, a read of a device
 * register (MMIO, outside RAM), an OUT of the value read, HLT with interrupts off.  The
 * embedder prints what the guest sends and answers the device read.  With
 * XBT_VM_STRING_IO the REP OUTSB arrives as one exit of many bytes.
 *
 * Usage: mini-vmm   (exit status 0 when the guest did all of it)
 */
#include <stdio.h>
#include <string.h>

#include <xbt/xbt.h>

#define GUEST_ENTRY 0x1000u
#define SERIAL 0x3f8
#define RESULT_PORT 0x501
#define DEVICE_GPA 0xd0000000u  /* a device register: no RAM there */
#define DEVICE_VALUE 0x1234abcdu

static const char greeting[] = "hello from the guest\n";

/* mov esi, msg; mov ecx, len; mov dx, 0x3f8; cld; rep outsb;
   mov eax, [DEVICE_GPA]; mov dx, 0x501; out dx, eax; cli; hlt; msg: ... */
static size_t guest_code(uint8_t *p)
{
    uint32_t msg = GUEST_ENTRY + 32, len = sizeof greeting - 1, dev = DEVICE_GPA;
    size_t n = 0;
    p[n++] = 0xBE; memcpy(p + n, &msg, 4); n += 4;           /* mov esi, msg */
    p[n++] = 0xB9; memcpy(p + n, &len, 4); n += 4;           /* mov ecx, len */
    p[n++] = 0x66; p[n++] = 0xBA; p[n++] = 0xF8; p[n++] = 0x03; /* mov dx, 0x3f8 */
    p[n++] = 0xFC;                                           /* cld */
    p[n++] = 0xF3; p[n++] = 0x6E;                            /* rep outsb */
    p[n++] = 0xA1; memcpy(p + n, &dev, 4); n += 4;           /* mov eax, [dev] */
    p[n++] = 0x66; p[n++] = 0xBA; p[n++] = 0x01; p[n++] = 0x05; /* mov dx, 0x501 */
    p[n++] = 0xEF;                                           /* out dx, eax */
    p[n++] = 0xFA; p[n++] = 0xF4;                            /* cli; hlt */
    memcpy(p + 32, greeting, sizeof greeting - 1);
    return 32 + sizeof greeting - 1;
}

int main(void)
{
    if (!XBT_API_COMPATIBLE(xbt_api_version())) {
        fprintf(stderr, "mini-vmm: the library's API %#x does not serve this header (%#x)\n",
                xbt_api_version(), XBT_API_VERSION);
        return 1;
    }
    xbt_vm_config cfg = XBT_VM_CONFIG_INIT;
    cfg.ram_size = 16u << 20;
    cfg.user_mode = XBT_USER_STRICT; /* no user code here; strict needs no runner */
    if (xbt_has(XBT_CAP_STRING_IO, NULL))
        cfg.flags |= XBT_VM_STRING_IO;
    xbt_vm *vm;
    xbt_vcpu *cpu;
    xbt_status st = xbt_vm_create(&cfg, &vm);
    if (st != XBT_OK) {
        fprintf(stderr, "mini-vmm: xbt_vm_create: %s\n", xbt_strerror(st));
        return 1;
    }
    uint8_t code[128];
    size_t n = guest_code(code);
    if ((st = xbt_vm_write_phys(vm, GUEST_ENTRY, code, n)) != XBT_OK ||
        (st = xbt_vcpu_create(vm, &cpu)) != XBT_OK) {
        fprintf(stderr, "mini-vmm: %s\n", xbt_strerror(st));
        xbt_vm_destroy(vm);
        return 1;
    }
    xbt_regs r;
    xbt_vcpu_get_regs(cpu, &r);
    r.eip = GUEST_ENTRY;
    r.esp = 0x8000;
    xbt_vcpu_set_regs(cpu, &r);

    int status = 1, serial_exits = 0;
    uint32_t result = 0;
    for (;;) {
        xbt_exit *ex;
        if (xbt_vcpu_run(cpu, &ex) != XBT_OK)
            break;
        if (ex->reason == XBT_EXIT_IO && !ex->io.is_in && ex->io.port == SERIAL) {
            serial_exits++;
            if (ex->io.count > 1) /* string I/O: count bytes in buf */
                fwrite(ex->io.buf, 1, ex->io.count, stdout);
            else
                putchar((int)(ex->io.data & 0xFF));
        } else if (ex->reason == XBT_EXIT_IO && !ex->io.is_in && ex->io.port == RESULT_PORT) {
            result = ex->io.data;
        } else if (ex->reason == XBT_EXIT_MMIO && !ex->mmio.is_write &&
                   ex->mmio.gpa == DEVICE_GPA && ex->mmio.size == 4) {
            ex->mmio.data = DEVICE_VALUE; /* the read completes at the next run */
        } else if (ex->reason == XBT_EXIT_HLT) {
            status = result == DEVICE_VALUE ? 0 : 1;
            break;
        } else {
            fprintf(stderr, "mini-vmm: unexpected exit %u\n", ex->reason);
            break;
        }
    }
    printf("mini-vmm: the guest read %#x from the device; the greeting took %d I/O exit%s\n",
           result, serial_exits, serial_exits == 1 ? "" : "s");
    xbt_vcpu_destroy(cpu);
    xbt_vm_destroy(vm);
    return status;
}
