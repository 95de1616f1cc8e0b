/*
 * runner_blob.S - the runner program (src/runtime/runner), built by CMake, embedded
 * into libxbt: runner.c writes it to a sealed memfd and executes it from there.
 */
        .section .rodata
        .balign 16
        .globl  xbt_runner_image, xbt_runner_image_end
xbt_runner_image:
        .incbin XBT_RUNNER_PATH
xbt_runner_image_end:

        .section .note.GNU-stack,"",@progbits
