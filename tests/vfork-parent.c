/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A command caught as dash runs its commands: vfork()ed, with a child that
 * has not exec'd yet. It prints "pid N" and stays so: the parent sleeps in the
 * kernel until the child execs or exits, which it never does. (A vfork child
 * may only exec or _exit; pause(2) touches no memory, which is what matters.) */
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(void) {
        printf("pid %d\n", (int) getpid());
        fflush(stdout);
        if (vfork() == 0)
                for (;;)
                        syscall(SYS_pause);
        return 0;
}
