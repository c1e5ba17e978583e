/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The peer of libvfio-resetd(3)'s EXAMPLE as the man page shows it from its
 * first #include on (tests/test-client.c checks that), built as a user would. */
#include <stdio.h>
#include <vfio-resetd.h>

static int on_pause(vrd_peer *p, const struct vrd_pause *pause, void *userdata) {
        fprintf(stderr, "pause %s\n", pause->type);     /* stop all DMA and MMIO here */
        return 0;                                       /* and acknowledge */
}

static void on_resume(vrd_peer *p, const struct vrd_resume *resume, void *userdata) {
        fprintf(stderr, "resume %s\n", resume->result); /* use the device again */
}

int main(int argc, char *argv[]) {
        vrd_peer *p;
        int device, iommu;

        if (argc != 2 || vrd_peer_new(&p) < 0)
                return 2;
        vrd_peer_on_pause(p, on_pause, NULL);
        vrd_peer_on_resume(p, on_resume, NULL);
        if (vrd_peer_take(p, argv[1], &device, &iommu, NULL) < 0) {
                fprintf(stderr, "%s\n", vrd_peer_error_message(p));
                return 1;
        }
        fprintf(stderr, "took %s\n", argv[1]);
        while (vrd_peer_process(p) >= 0 && vrd_peer_wait(p, UINT64_MAX) >= 0)
                ;
        return 1;
}
