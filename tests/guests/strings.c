/*
 * strings.c - string instructions with and without REP in both directions: MOVS,
 * STOS, LODS, CMPS, SCAS in byte and dword sizes, zero counts, overlapping moves,
 * and the registers left behind.
 */
#include "lib/guest.h"

static u8 a[256], b[256];

void main(void)
{
    for (int i = 0; i < 256; i++) {
        a[i] = (u8)(i * 7 + 1);
        b[i] = 0;
    }
    u8 *s = a, *d = b;
    u32 c = 100;
    __asm__ volatile("cld; rep movsb" : "+S"(s), "+D"(d), "+c"(c) : : "memory");
    CHECK(!memcmp(a, b, 100) && b[100] == 0, "rep movsb forward");
    CHECK_EQ(s - a, 100, "movsb esi advanced");
    CHECK_EQ(d - b, 100, "movsb edi advanced");
    CHECK_EQ(c, 0, "movsb ecx 0");
    s = a + 255; d = b + 255; c = 10;
    __asm__ volatile("std; rep movsb; cld" : "+S"(s), "+D"(d), "+c"(c) : : "memory");
    CHECK_EQ(b[246] , a[246], "rep movsb backward");
    CHECK_EQ(b[245], 0, "movsb backward stops");
    CHECK_EQ(s - a, 245, "movsb backward esi");
    u32 w[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
    u32 *ws = w, *wd = w + 1;
    c = 7;
    /* Overlapping forward dword move: replicates w[0]. */
    __asm__ volatile("cld; rep movsl" : "+S"(ws), "+D"(wd), "+c"(c) : : "memory");
    CHECK(w[7] == 1 && w[3] == 1, "overlapping rep movsl replicates");
    c = 0; s = a; d = b;
    __asm__ volatile("cld; rep movsb" : "+S"(s), "+D"(d), "+c"(c) : : "memory");
    CHECK(s == a && d == b, "rep with ecx=0 does nothing");
    d = b; c = 64;
    __asm__ volatile("cld; rep stosb" : "+D"(d), "+c"(c) : "a"(0xab) : "memory");
    CHECK(b[0] == 0xab && b[63] == 0xab && b[64] != 0xab, "rep stosb");
    u32 *dw = (u32 *)b + 40;
    c = 4;
    __asm__ volatile("std; rep stosl; cld" : "+D"(dw), "+c"(c) : "a"(0x11223344) : "memory");
    CHECK(((u32 *)b)[37] == 0x11223344 && ((u32 *)b)[40] == 0x11223344, "rep stosl backward");
    CHECK_EQ((u32 *)b + 36 - dw, 0, "stosl backward edi");
    u32 acc;
    s = a;
    __asm__ volatile("cld; lodsb; lodsb" : "=a"(acc), "+S"(s) : "a"(0xffffff00u));
    CHECK_EQ(acc, 0xffffff00u | a[1], "lodsb keeps upper eax");
    /* repe cmpsb stops at the first difference. */
    for (int i = 0; i < 64; i++)
        b[i] = a[i];
    b[40] ^= 1;
    s = a; d = b; c = 64;
    __asm__ volatile("cld; repe cmpsb" : "+S"(s), "+D"(d), "+c"(c) : : "memory", "cc");
    CHECK_EQ(s - a, 41, "repe cmpsb stops after the difference");
    CHECK_EQ(c, 23, "repe cmpsb ecx left");
    u8 zf;
    s = a; d = b; c = 40;
    __asm__ volatile("cld; repe cmpsb; setz %3" : "+S"(s), "+D"(d), "+c"(c), "=q"(zf) : : "memory", "cc");
    CHECK(zf, "repe cmpsb equal prefix: zf=1");
    /* repne scasb finds a byte. */
    d = a; c = 256;
    u8 target = a[77];
    int first = 0;
    while (a[first] != target)
        first++;
    __asm__ volatile("cld; repne scasb" : "+D"(d), "+c"(c) : "a"(target) : "memory", "cc");
    CHECK_EQ(d - a, first + 1, "repne scasb finds the byte");
    CHECK_EQ(c, 256 - first - 1, "repne scasb ecx");
    /* scasl backward. */
    u32 arr[6] = { 9, 8, 7, 6, 5, 4 };
    u32 *ap = arr + 5;
    c = 6;
    __asm__ volatile("std; repne scasl; cld" : "+D"(ap), "+c"(c) : "a"(7) : "memory", "cc");
    CHECK_EQ(ap - arr, 1, "repne scasl backward");
    /* movsw and a 16-bit address-size form are rare; check movsw forward. */
    u16 h1[4] = { 0x1111, 0x2222, 0x3333, 0x4444 }, h2[4] = { 0, 0, 0, 0 };
    u16 *hs = h1, *hd = h2;
    c = 3;
    __asm__ volatile("cld; rep movsw" : "+S"(hs), "+D"(hd), "+c"(c) : : "memory");
    CHECK(h2[2] == 0x3333 && h2[3] == 0, "rep movsw");
    /* A long move: 64 KiB through rep movsl. */
    static u32 big1[16384], big2[16384];
    for (int i = 0; i < 16384; i++)
        big1[i] = (u32)i * 2654435761u;
    u32 *bs = big1, *bd = big2;
    c = 16384;
    __asm__ volatile("cld; rep movsl" : "+S"(bs), "+D"(bd), "+c"(c) : : "memory");
    CHECK(!memcmp(big1, big2, sizeof big1), "rep movsl 64 KiB");
}
