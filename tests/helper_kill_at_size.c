/* helper_kill_at_size.c: sends SIGKILL to a process at a chosen moment of a
 * file write, for scripts/fault_report.sh's "kill -9 of rank 0 during a
 * checkpoint write": a checkpoint is written under a temporary name by rank
 * 0's writer thread, so watching the file grow times the kill on that
 * thread. inotify reports each write() as it happens; a shell loop polling
 * the size is too slow for a 100 MB file written in a second.
 *
 *   helper_kill_at_size DIR PREFIX BYTES PID [SECONDS]
 *
 * Waits until a file in DIR whose name starts with PREFIX holds at least
 * BYTES, sends SIGKILL to PID and prints "killed PID: NAME had N bytes".
 * Exits 1 when SECONDS (60) pass first, or when the file disappears (renamed
 * into place: the write ended) before reaching BYTES. Test code only.
 */
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The size of the newest file in dir starting with prefix, its name in name;
 * -1 when there is none. */
static long long match_size(const char *dir, const char *prefix, char *name, size_t namelen)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    long long best = -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, prefix, strlen(prefix)) != 0) continue;
        char p[4096];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (stat(p, &st) == 0 && (long long)st.st_size > best) {
            best = (long long)st.st_size;
            snprintf(name, namelen, "%s", e->d_name);
        }
    }
    closedir(d);
    return best;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: helper_kill_at_size DIR PREFIX BYTES PID [SECONDS]\n");
        return 2;
    }
    const char *dir = argv[1], *prefix = argv[2];
    long long want = atoll(argv[3]);
    pid_t pid = (pid_t)atol(argv[4]);
    double limit = argc > 5 ? atof(argv[5]) : 60.0;
    int fd = inotify_init1(IN_CLOEXEC);
    if (fd < 0 || inotify_add_watch(fd, dir, IN_CREATE | IN_MODIFY | IN_MOVED_FROM | IN_DELETE) < 0) {
        fprintf(stderr, "helper_kill_at_size: cannot watch %s: %s\n", dir, strerror(errno));
        return 1;
    }
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    char name[256] = "", buf[4096];
    int seen = 0;
    for (;;) {
        long long size = match_size(dir, prefix, name, sizeof name);
        if (size >= want) {
            kill(pid, SIGKILL);
            printf("killed %ld: %s had %lld bytes\n", (long)pid, name, size);
            return 0;
        }
        if (size >= 0) seen = 1;
        else if (seen) {
            fprintf(stderr, "helper_kill_at_size: the file was renamed or removed before reaching %lld bytes\n", want);
            return 1;
        }
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((t.tv_sec - t0.tv_sec) + (t.tv_nsec - t0.tv_nsec) * 1e-9 > limit) {
            fprintf(stderr, "helper_kill_at_size: no %s* of %lld bytes in %s within %g s\n", prefix, want, dir, limit);
            return 1;
        }
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 100) > 0 && read(fd, buf, sizeof buf) < 0 && errno != EAGAIN) return 1;
    }
}
