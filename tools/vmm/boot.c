/*
 * boot.c - what both loaders share: the one-line error message and the image probe.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "boot.h"

int boot_fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    /* One line whatever a file name holds. */
    for (char *p = err; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    return -1;
}

bool boot_is_bzimage(const uint8_t *img, size_t len)
{
    return img && len >= 0x206 && !memcmp(img + 0x202, "HdrS", 4);
}
