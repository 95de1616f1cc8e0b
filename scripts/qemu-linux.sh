# qemu-linux.sh (sourced by bench/run-linux.sh, bench/run-macro.sh, tests/linux/run-linux.sh): Debian's kernel
# under qemu-system-i386 on the serial console until it halts, panics or powers off
# (with acpi=off the guest cannot switch QEMU off: the log is watched instead).
# qemu_linux ACCEL MEM_MIB KERNEL INITRD CMDLINE LOG [TENTHS]: TENTHS of a second at
# most (default 6000, 10 minutes).  QEMU_SMP=N in the environment: N vCPUs (-smp N; TCG
# runs them on a host thread each).
qemu_linux() {
    qemu-system-i386 -accel "$1" ${QEMU_SMP:+-smp "$QEMU_SMP"} -m "$2" -kernel "$3" -initrd "$4" -append "$5" \
        -display none -nographic -monitor none -serial stdio -no-reboot </dev/null >"$6" 2>&1 &
    local q=$!
    for _ in $(seq "${7:-6000}"); do
        grep -aq "System halted\|Kernel panic\|reboot: Power down" "$6" && break
        kill -0 $q 2>/dev/null || break
        sleep 0.1
    done
    kill $q 2>/dev/null
    wait $q 2>/dev/null
}
