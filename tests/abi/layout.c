/*
 * The plugin ABI's layout, frozen: every struct's size and every field's
 * offset must stay what layout_table.h says, for x86_64, aarch64 and armhf,
 * in C11 and C++17 (layout.cpp includes this file). Checked at compile
 * time, so building this file is the test; tests/abi/check_layout.py
 * compiles it for the other architectures with -fsyntax-only.
 *
 * Against the live header, structs that may grow need only be at least
 * their frozen size; with DUET_LAYOUT_EXACT (the frozen copy of the header
 * in v1.3/) every size must match exactly.
 */
#include <stddef.h>

#include <duet/plugin.h>

#if defined(__x86_64__)
#define DUET_ARCH(x86_64, aarch64, armhf) x86_64
#elif defined(__aarch64__)
#define DUET_ARCH(x86_64, aarch64, armhf) aarch64
#elif defined(__arm__) && defined(__ARM_PCS_VFP)
#define DUET_ARCH(x86_64, aarch64, armhf) armhf
#else
#error "no frozen plugin ABI layout for this architecture: add a column to layout_table.h"
#endif

#ifdef __cplusplus
#define DUET_ASSERT static_assert
#else
#define DUET_ASSERT _Static_assert
#endif

#define DUET_FIELD(type, field, x86_64, aarch64, armhf) \
  DUET_ASSERT(offsetof(type, field) == DUET_ARCH(x86_64, aarch64, armhf), #type "." #field " moved");
#define DUET_SIZE_FIXED(type, x86_64, aarch64, armhf) \
  DUET_ASSERT(sizeof(type) == DUET_ARCH(x86_64, aarch64, armhf), "the size of " #type " changed");
#ifdef DUET_LAYOUT_EXACT
#define DUET_SIZE DUET_SIZE_FIXED
#else
#define DUET_SIZE(type, x86_64, aarch64, armhf) \
  DUET_ASSERT(sizeof(type) >= DUET_ARCH(x86_64, aarch64, armhf), #type " shrank");
#endif

#include "layout_table.h"

#if defined(DUET_LAYOUT_EXACT)
DUET_ASSERT(DUET_ABI_MAJOR == 1 && DUET_ABI_MINOR == 3, "v1.3/duet/plugin.h is the frozen copy of ABI 1.3");
#else
DUET_ASSERT(DUET_ABI_MAJOR == 1 && DUET_ABI_MINOR >= 3, "the ABI major changed or the minor went back");
#endif

int duet_abi_layout_checked(void);
int duet_abi_layout_checked(void) { return 1; }
