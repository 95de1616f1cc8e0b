/*
 * ata.c - ATA disks on the two legacy IDE channels, PIO only: primary at 0x1f0-0x1f7
 * with control/alternate status at 0x3f6 and IRQ 14, secondary at 0x170-0x177, 0x376,
 * IRQ 15.  Disk index n as QEMU's -drive index: 0 primary master, 1 primary slave,
 * 2 secondary master, 3 secondary slave; each is a raw image file.
 *
 * Commands: IDENTIFY DEVICE, READ/WRITE SECTORS (with and without retries), READ/WRITE
 * MULTIPLE and SET MULTIPLE MODE (up to 16 sectors per block), READ VERIFY, FLUSH
 * CACHE (fsync), SET FEATURES, INITIALIZE DEVICE PARAMETERS, RECALIBRATE, the power
 * commands (idle, standby, CHECK POWER MODE); others abort.  LBA28 and CHS addressing
 * (16 heads, 63 sectors per track); no LBA48, no DMA.  Interrupts: at each data block
 * of a read, after each block of a write, at the end of non-data commands; reading
 * the status register or writing a command clears the request (so each completion is a
 * new edge), the alternate status does not; nIEN holds the line low; SRST resets the channel to the power-on signature.
 *
 * Writes go to the file at once (pwrite), so they survive any end of the run;
 * FLUSH CACHE and the end of the run fsync.  A read or write past the end of the disk
 * ends in IDNF, a host I/O error in UNC.  As in QEMU, task-file writes reach both
 * drives of a channel; with device 1 present and device 0 absent, device 0's status
 * reads ready (DRDY|DSC) and its commands abort; an absent device 1 reads 0.
 * Call with vmm.lock held.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmm.h"

#define ST_BSY 0x80
#define ST_DRDY 0x40
#define ST_DSC 0x10
#define ST_DRQ 0x08
#define ST_ERR 0x01
#define ER_UNC 0x40
#define ER_IDNF 0x10
#define ER_ABRT 0x04
#define CTL_NIEN 0x02
#define CTL_SRST 0x04
#define HEADS 16
#define SPT 63
#define MAX_MULTIPLE 16

static int fail(char *err, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, n, fmt, ap);
    va_end(ap);
    return -1;
}

int ata_attach(struct vmm *m, int index, const char *path, bool read_only, char *err,
               size_t errlen)
{
    if (index < 0 || index >= ATA_DRIVES)
        return fail(err, errlen, "--disk %s: index %d (0-%d: primary master, primary slave, "
                    "secondary master, secondary slave)", path, index, ATA_DRIVES - 1);
    struct ata_drive *d = &m->ata.drive[index];
    if (d->fd >= 0)
        return fail(err, errlen, "--disk %s: index %d is taken by %s", path, index, d->path);
    int fd = open(path, (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
    if (fd < 0)
        return fail(err, errlen, "--disk %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !(S_ISREG(st.st_mode) || S_ISBLK(st.st_mode))) {
        close(fd);
        return fail(err, errlen, "--disk %s: not a regular file or block device", path);
    }
    off_t size = S_ISBLK(st.st_mode) ? lseek(fd, 0, SEEK_END) : st.st_size;
    if (size < 0) {
        close(fd);
        return fail(err, errlen, "--disk %s: %s", path, strerror(errno));
    }
    d->fd = fd;
    d->path = path;
    d->read_only = read_only;
    d->multiple = 0;
    d->sectors = ((uint64_t)size + 511) / 512; /* a partial last sector reads as zeros */
    return 0;
}

static void reset_channel(struct ata_channel *c)
{
    c->nsect = 1, c->lbal = 1, c->lbam = 0, c->lbah = 0, c->select = 0xa0;
    c->feature = 0;
    c->status[0] = c->status[1] = ST_DRDY | ST_DSC;
    c->error[0] = c->error[1] = 0x01; /* diagnostics passed */
    c->cmd = 0;
    c->buf_pos = c->buf_len = 0;
    c->xfer_left = 0;
    c->intrq = false;
}

void ata_init(struct vmm *m)
{
    static const uint16_t base[2] = { 0x1f0, 0x170 }, ctl[2] = { 0x3f6, 0x376 };
    for (int i = 0; i < 2; i++) {
        struct ata_channel *c = &m->ata.ch[i];
        c->base = base[i];
        c->ctl = ctl[i];
        c->irq = i ? 15 : 14;
        c->control = 0;
        reset_channel(c);
    }
    for (int i = 0; i < ATA_DRIVES; i++)
        m->ata.drive[i] = (struct ata_drive){ .fd = -1 };
}

void ata_flush(struct vmm *m)
{
    for (int i = 0; i < ATA_DRIVES; i++)
        if (m->ata.drive[i].fd >= 0 && !m->ata.drive[i].read_only)
            fsync(m->ata.drive[i].fd);
}

void ata_detach_all(struct vmm *m)
{
    ata_flush(m);
    for (int i = 0; i < ATA_DRIVES; i++) {
        if (m->ata.drive[i].fd >= 0)
            close(m->ata.drive[i].fd);
        m->ata.drive[i].fd = -1;
    }
}

static int unit(const struct ata_channel *c) { return (c->select >> 4) & 1; }

static struct ata_drive *cur_drive(struct vmm *m, struct ata_channel *c)
{
    struct ata_drive *d = &m->ata.drive[(c == &m->ata.ch[1] ? 2 : 0) + unit(c)];
    return d->fd >= 0 ? d : NULL;
}

static bool channel_empty(struct vmm *m, struct ata_channel *c)
{
    int b = c == &m->ata.ch[1] ? 2 : 0;
    return m->ata.drive[b].fd < 0 && m->ata.drive[b + 1].fd < 0;
}

static void update_irq(struct vmm *m, struct ata_channel *c)
{
    irq_set(m, c->irq, c->intrq && !(c->control & CTL_NIEN));
}

static void raise(struct vmm *m, struct ata_channel *c)
{
    c->intrq = true;
    update_irq(m, c);
}

static void finish(struct vmm *m, struct ata_channel *c, uint8_t error)
{
    int u = unit(c);
    c->cmd = 0;
    c->buf_pos = c->buf_len = 0;
    c->xfer_left = 0;
    c->error[u] = error;
    c->status[u] = (uint8_t)(ST_DRDY | ST_DSC | (error ? ST_ERR : 0));
    raise(m, c);
}

/* ATA strings: two characters per word, the first in the high byte, space padded. */
static void ata_string(uint16_t *w, const char *s, int words)
{
    for (int i = 0; i < words; i++) {
        char a = *s ? *s++ : ' ';
        char b = *s ? *s++ : ' ';
        w[i] = (uint16_t)(((uint8_t)a << 8) | (uint8_t)b);
    }
}

static void identify(const struct ata_drive *d, uint8_t *out)
{
    uint16_t w[256] = { 0 };
    uint64_t lba28 = d->sectors > 0x0fffffff ? 0x0fffffff : d->sectors;
    uint64_t cyl = d->sectors / (HEADS * SPT);
    if (cyl > 16383)
        cyl = 16383;
    w[0] = 0x0040;                            /* fixed ATA device */
    w[1] = (uint16_t)cyl, w[3] = HEADS, w[6] = SPT;
    ata_string(w + 10, "XBT0000000000001", 10);
    ata_string(w + 23, "0.1", 4);
    ata_string(w + 27, "XBT-RUN ATA DISK", 20);
    w[47] = 0x8000 | MAX_MULTIPLE;
    w[49] = 0x0200;                           /* LBA; no DMA */
    w[50] = 0x4000;
    w[51] = 0x0200;                           /* PIO mode 2 timing */
    w[53] = 0x0003;                           /* words 54-58 and 64-70 valid */
    w[54] = (uint16_t)cyl, w[55] = HEADS, w[56] = SPT;
    uint32_t chs = (uint32_t)(cyl * HEADS * SPT);
    w[57] = (uint16_t)chs, w[58] = (uint16_t)(chs >> 16);
    w[59] = d->multiple ? (uint16_t)(0x100 | d->multiple) : 0;
    w[60] = (uint16_t)lba28, w[61] = (uint16_t)(lba28 >> 16);
    w[64] = 0x0003;                           /* PIO modes 3 and 4 */
    w[65] = w[66] = w[67] = w[68] = 120;
    w[80] = 0x007e;                           /* ATA-1 to ATA-6 */
    w[82] = 0x4000;                           /* NOP */
    w[83] = 0x5000;                           /* FLUSH CACHE; word valid */
    w[84] = 0x4000;
    w[85] = 0x4000;
    w[86] = 0x1000;
    w[87] = 0x4000;
    memcpy(out, w, 512);
}

/* The command's starting sector from the task file (LBA28 or CHS); false if invalid. */
static bool start_sector(const struct ata_channel *c, uint64_t *lba)
{
    if (c->select & 0x40) {
        *lba = ((uint64_t)(c->select & 0x0f) << 24) | ((uint64_t)c->lbah << 16) |
               ((uint64_t)c->lbam << 8) | c->lbal;
        return true;
    }
    unsigned cyl = c->lbam | (unsigned)c->lbah << 8, head = c->select & 0x0f, sec = c->lbal;
    if (sec == 0 || sec > SPT)
        return false;
    *lba = ((uint64_t)cyl * HEADS + head) * SPT + sec - 1;
    return true;
}

/* Moves one block (at most block sectors) between the file and the buffer. */
static uint8_t disk_io(struct ata_drive *d, struct ata_channel *c, bool write, unsigned n)
{
    size_t len = 512u * n;
    off_t off = (off_t)(c->lba * 512);
    ssize_t r;
    if (write) {
        r = pwrite(d->fd, c->buf, len, off);
        return r == (ssize_t)len ? 0 : ER_UNC;
    }
    memset(c->buf, 0, len);
    r = pread(d->fd, c->buf, len, off);
    return r < 0 ? ER_UNC : 0; /* short: the partial last sector reads as zeros */
}

/* The next data block of a read (loaded, DRQ, interrupt) or write (DRQ). */
static void next_block(struct vmm *m, struct ata_channel *c, bool write)
{
    struct ata_drive *d = cur_drive(m, c);
    unsigned per = (c->cmd == 0xc4 || c->cmd == 0xc5) ? d->multiple : 1;
    unsigned n = c->xfer_left < per ? c->xfer_left : per;
    if (!write) {
        uint8_t e = disk_io(d, c, false, n);
        if (e) {
            finish(m, c, e);
            return;
        }
    }
    c->buf_pos = 0;
    c->buf_len = 512u * n;
    c->block = n;
    c->status[unit(c)] = ST_DRDY | ST_DSC | ST_DRQ;
    if (!write || c->first_done)
        raise(m, c);
}

static void rw_command(struct vmm *m, struct ata_channel *c, struct ata_drive *d, bool write)
{
    uint64_t lba;
    unsigned n = c->nsect ? c->nsect : 256;
    if ((c->cmd == 0xc4 || c->cmd == 0xc5) && !d->multiple) {
        finish(m, c, ER_ABRT); /* multiple mode not set */
        return;
    }
    if (!start_sector(c, &lba) || lba + n > d->sectors) {
        finish(m, c, ER_IDNF);
        return;
    }
    if (write && d->read_only) {
        finish(m, c, ER_ABRT);
        return;
    }
    c->lba = lba;
    c->xfer_left = n;
    c->first_done = false;
    next_block(m, c, write);
}

static void command(struct vmm *m, struct ata_channel *c, uint8_t cmd)
{
    struct ata_drive *d = cur_drive(m, c);
    c->intrq = false; /* writing the command register clears a pending interrupt */
    update_irq(m, c);
    if (!d) {
        if (unit(c) == 0 && !channel_empty(m, c))
            finish(m, c, ER_ABRT); /* absent device 0 beside a device 1 */
        return;                    /* absent device 1: commands are ignored */
    }
    if (c->status[unit(c)] & (ST_BSY | ST_DRQ))
        return; /* busy with the previous command */
    c->cmd = cmd;
    switch (cmd) {
    case 0xec:
        identify(d, c->buf);
        c->buf_pos = 0, c->buf_len = 512, c->xfer_left = 0, c->block = 0;
        c->status[unit(c)] = ST_DRDY | ST_DSC | ST_DRQ;
        c->error[unit(c)] = 0;
        raise(m, c);
        return;
    case 0x20: case 0x21: case 0xc4: rw_command(m, c, d, false); return;
    case 0x30: case 0x31: case 0xc5: rw_command(m, c, d, true); return;
    case 0xc6:
        if (c->nsect > MAX_MULTIPLE || (c->nsect & (c->nsect - 1))) {
            finish(m, c, ER_ABRT);
            return;
        }
        d->multiple = c->nsect;
        finish(m, c, 0);
        return;
    case 0x40: case 0x41: {
        uint64_t lba;
        unsigned n = c->nsect ? c->nsect : 256;
        finish(m, c, start_sector(c, &lba) && lba + n <= d->sectors ? 0 : ER_IDNF);
        return;
    }
    case 0xe7:
        finish(m, c, d->read_only || fsync(d->fd) == 0 ? 0 : ER_ABRT);
        return;
    case 0xe5: c->nsect = 0xff; finish(m, c, 0); return; /* active or idle */
    case 0xef: case 0x91: case 0xe0: case 0xe1: case 0xe2: case 0xe3: finish(m, c, 0); return;
    default:
        if (cmd >= 0x10 && cmd <= 0x1f) { /* RECALIBRATE */
            finish(m, c, 0);
            return;
        }
        finish(m, c, ER_ABRT);
        return;
    }
}

/* A data block has been transferred through the data port. */
static void block_done(struct vmm *m, struct ata_channel *c)
{
    bool write = c->cmd == 0x30 || c->cmd == 0x31 || c->cmd == 0xc5;
    if (c->cmd == 0xec) {
        c->cmd = 0;
        c->status[unit(c)] = ST_DRDY | ST_DSC;
        return;
    }
    struct ata_drive *d = cur_drive(m, c);
    if (write) {
        uint8_t e = disk_io(d, c, true, c->block);
        if (e) {
            finish(m, c, e);
            return;
        }
    }
    c->lba += c->block;
    c->xfer_left -= c->block;
    c->first_done = true;
    if (c->xfer_left) {
        next_block(m, c, write);
        return;
    }
    if (write) {
        finish(m, c, 0);
    } else {
        c->cmd = 0;
        c->buf_pos = c->buf_len = 0;
        c->status[unit(c)] = ST_DRDY | ST_DSC;
    }
}

static uint32_t data_port(struct vmm *m, struct ata_channel *c, unsigned size, bool is_in,
                          uint32_t val)
{
    if (!(c->status[unit(c)] & ST_DRQ) || c->buf_pos >= c->buf_len)
        return 0; /* no transfer: reads 0, writes are dropped (as QEMU) */
    uint32_t v = 0;
    for (unsigned i = 0; i < size && c->buf_pos < c->buf_len; i++, c->buf_pos++) {
        if (is_in)
            v |= (uint32_t)c->buf[c->buf_pos] << (8 * i);
        else
            c->buf[c->buf_pos] = (uint8_t)(val >> (8 * i));
    }
    if (c->buf_pos >= c->buf_len)
        block_done(m, c);
    return v;
}

static uint8_t status_of(struct vmm *m, struct ata_channel *c)
{
    if (channel_empty(m, c) || (unit(c) == 1 && !cur_drive(m, c)))
        return 0;
    return c->status[unit(c)];
}

static uint32_t task_file(struct vmm *m, struct ata_channel *c, unsigned reg, bool is_in,
                          uint8_t v)
{
    if (is_in) {
        if (channel_empty(m, c))
            return 0;
        switch (reg) {
        case 1: return (unit(c) == 1 && !cur_drive(m, c)) ? 0 : c->error[unit(c)];
        case 2: return c->nsect;
        case 3: return c->lbal;
        case 4: return c->lbam;
        case 5: return c->lbah;
        case 6: return c->select;
        default: {
            uint8_t s = status_of(m, c);
            c->intrq = false;
            update_irq(m, c);
            return s;
        }
        }
    }
    switch (reg) {
    case 1: c->feature = v; break;
    case 2: c->nsect = v; break;
    case 3: c->lbal = v; break;
    case 4: c->lbam = v; break;
    case 5: c->lbah = v; break;
    case 6: c->select = v | 0xa0; break;
    default: command(m, c, v); break;
    }
    return 0;
}

static void control(struct vmm *m, struct ata_channel *c, uint8_t v)
{
    bool was_reset = c->control & CTL_SRST;
    c->control = v;
    if ((v & CTL_SRST) && !was_reset) {
        reset_channel(c);
        c->status[0] = c->status[1] = ST_BSY;
    } else if (!(v & CTL_SRST) && was_reset) {
        reset_channel(c);
    }
    update_irq(m, c);
}

uint32_t ata_io(struct vmm *m, uint16_t port, unsigned size, bool is_in, uint32_t val)
{
    for (int i = 0; i < 2; i++) {
        struct ata_channel *c = &m->ata.ch[i];
        if (port == c->ctl) {
            if (is_in)
                return status_of(m, c); /* alternate status: no interrupt side effect */
            control(m, c, (uint8_t)val);
            return 0;
        }
        if (port < c->base || port > c->base + 7)
            continue;
        if (port == c->base)
            return data_port(m, c, size, is_in, val);
        return task_file(m, c, port - c->base, is_in, (uint8_t)val);
    }
    return is_in ? 0xffffffffu : 0;
}

/* Each channel's registers, the command in progress with its data buffer, and each
   drive's READ/WRITE MULTIPLE setting.  The disks themselves are files: their names and
   contents are not state (the restore opens the files the state names, which hold what
   the guest wrote: ata_flush runs before a save). */
void ata_state(struct vmm *m, struct vstate *s)
{
    s->dev = "ATA";
    for (int i = 0; i < 2; i++) {
        struct ata_channel *c = &m->ata.ch[i];
        uint8_t *f[] = { &c->feature, &c->nsect, &c->lbal, &c->lbam, &c->lbah, &c->select,
                         &c->control, &c->status[0], &c->status[1], &c->error[0],
                         &c->error[1], &c->cmd };
        for (size_t k = 0; k < sizeof f / sizeof f[0]; k++)
            vs_u8(s, f[k]);
        vs_bool(s, &c->intrq);
        vs_bool(s, &c->first_done);
        uint32_t pos = c->buf_pos, len = c->buf_len, block = c->block;
        vs_u32(s, &pos);
        vs_u32(s, &len);
        vs_u32(s, &block);
        vs_u32(s, &c->xfer_left);
        vs_u64(s, &c->lba);
        vs_check(s, pos <= len && len <= sizeof c->buf && block <= 16,
                 "a data transfer beyond the buffer");
        if (s->load && s->err[0])
            return;
        c->buf_pos = pos, c->buf_len = len, c->block = block;
        vs_bytes(s, c->buf, sizeof c->buf);
    }
    for (int i = 0; i < ATA_DRIVES; i++) {
        vs_u8(s, &m->ata.drive[i].multiple);
        vs_check(s, m->ata.drive[i].multiple <= 16, "a block of more than 16 sectors");
    }
}
