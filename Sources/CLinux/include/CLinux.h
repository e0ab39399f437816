// Linux system calls that Swift cannot call directly (variadic syscall()/prctl(), or constants
// glibc 2.36's headers lack). Static inline, so this target has no code of its own.
#ifndef DESKGATE_CLINUX_H
#define DESKGATE_CLINUX_H
#include <sys/syscall.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <signal.h>
#include <string.h>
#include <errno.h>
#include <sys/un.h>
#include <malloc.h>  // mallopt, malloc_trim (Daemon MemoryTuning)

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

/// struct ucred (SO_PEERCRED), declared here because glibc hides it without _GNU_SOURCE.
struct deskgate_ucred { pid_t pid; uid_t uid; gid_t gid; };

/// SO_PEERPIDFD (Linux 6.5); glibc 2.36 lacks the constant.
static const int deskgate_SO_PEERPIDFD = 77;
/// PR_SET_MDWE / PR_GET_MDWE (Linux 6.3): memory-deny-write-execute for this process.
static const int deskgate_PR_SET_MDWE = 65;
static const int deskgate_PR_GET_MDWE = 66;

static inline int deskgate_pidfd_open(pid_t pid) {
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

/// Sends signal 0 through a pidfd: 0 while the process lives, -1/ESRCH once it has exited.
static inline int deskgate_pidfd_alive(int pidfd) {
    return (int)syscall(SYS_pidfd_send_signal, pidfd, 0, (void *)0, 0);
}

static inline int deskgate_prctl_set_mdwe(unsigned long flags) {
    return prctl(deskgate_PR_SET_MDWE, flags, 0L, 0L, 0L);
}

static inline int deskgate_prctl_get_mdwe(void) {
    return prctl(deskgate_PR_GET_MDWE, 0L, 0L, 0L, 0L);
}

static inline int deskgate_set_no_new_privs(void) {
    return prctl(PR_SET_NO_NEW_PRIVS, 1L, 0L, 0L, 0L);
}
/// Fills a sockaddr_un for `path`; -1 with ENAMETOOLONG when it does not fit (NUL included).
static inline int deskgate_unix_address(const char *path, struct sockaddr_un *address) {
    size_t length = strlen(path);
    if (length >= sizeof(address->sun_path)) { errno = ENAMETOOLONG; return -1; }
    memset(address, 0, sizeof(*address));
    address->sun_family = AF_UNIX;
    memcpy(address->sun_path, path, length + 1);
    return 0;
}

/// connect(2) to a Unix socket path: 0, or -1 with errno.
static inline int deskgate_unix_connect(int fd, const char *path) {
    struct sockaddr_un address;
    if (deskgate_unix_address(path, &address) != 0) return -1;
    return connect(fd, (const struct sockaddr *)&address, sizeof(address));
}

/// bind(2) to a Unix socket path: 0, or -1 with errno.
static inline int deskgate_unix_bind(int fd, const char *path) {
    struct sockaddr_un address;
    if (deskgate_unix_address(path, &address) != 0) return -1;
    return bind(fd, (const struct sockaddr *)&address, sizeof(address));
}
#endif
