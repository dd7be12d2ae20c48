/* libc interfaces that Swift's Glibc module leaves out. */
#include <sys/xattr.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <errno.h>
#include <linux/openat2.h>

/* openat2(2) has no glibc wrapper on Debian 12; Swift cannot call the variadic syscall(2). */
static inline int boxstack_openat2(int dirfd, const char *path, int flags, unsigned int mode, unsigned long long resolve) {
    struct open_how how = { .flags = (unsigned long long)flags, .mode = mode, .resolve = resolve };
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}

static const unsigned long long BOXSTACK_RESOLVE_IN_ROOT = RESOLVE_IN_ROOT;
static const unsigned long long BOXSTACK_RESOLVE_BENEATH = RESOLVE_BENEATH;
static const unsigned long long BOXSTACK_RESOLVE_NO_MAGICLINKS = RESOLVE_NO_MAGICLINKS;
static const unsigned long long BOXSTACK_RESOLVE_NO_XDEV = RESOLVE_NO_XDEV;

/* O_PATH needs _GNU_SOURCE in glibc's headers, which Swift's Glibc module does not define. */
#include <fcntl.h>
#ifdef O_PATH
static const int BOXSTACK_O_PATH = O_PATH;
#else
static const int BOXSTACK_O_PATH = 010000000;
#endif
