# peers.sh - sourced by run-gdb.sh and run-gdb-watch.sh: one gdb session against each
# peer's gdb stub, on the same guest kernel.  Needs $xbt (xbt-run), $kernel and $out (a
# scratch folder); XBT_GDB_ARGS adds options to xbt-run, QEMU_GDB_ARGS to QEMU.

port() { echo $((20000 + (RANDOM % 20000))); }

# session PEER GDB-ARGS...: starts PEER's stub (xbt or qemu-tcg) stopped before the
# guest's first instruction, waits until it listens, runs gdb connected to it with the
# commands given; the transcript goes to $out/PEER.gdb, the guest's output to
# $out/PEER.log.
session() {
    local peer=$1 p
    shift
    p=$(port)
    case $peer in
    xbt) timeout 120 "$xbt" ${XBT_GDB_ARGS:-} --gdb "$p" "$kernel" >"$out/$peer.log" 2>&1 & ;;
    qemu-tcg) timeout 120 qemu-system-i386 -accel tcg -m 128 -kernel "$kernel" -display none \
            -nographic -monitor none -serial stdio -no-reboot -S -gdb "tcp:127.0.0.1:$p" \
            -device isa-debug-exit,iobase=0xf4,iosize=0x04 -device pc-testdev ${QEMU_GDB_ARGS:-} \
            </dev/null >"$out/$peer.log" 2>&1 & ;;
    esac
    for i in $(seq 100); do # until the stub listens (xbt-run takes one connection only:
        # its own line says so; QEMU's takes a probe and then gdb's)
        if [ $peer = xbt ]; then
            grep -q 'waiting for gdb' "$out/$peer.log" && break
        else
            (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && break
        fi
        sleep 0.1
    done
    timeout 120 gdb -batch -nx -ex 'set architecture i386' -ex 'set confirm off' \
        -ex "target remote 127.0.0.1:$p" "$@" "$kernel" >"$out/$peer.gdb" 2>&1
    wait
}

# sessions GDB-ARGS...: the session on xbt, then on QEMU TCG when it is installed (else
# said); $peers names the peers that ran.
sessions() {
    session xbt "$@"
    peers=xbt
    if command -v qemu-system-i386 >/dev/null; then
        session qemu-tcg "$@"
        peers="xbt qemu-tcg"
    else
        echo "QEMU TCG: qemu-system-i386 not installed, xbt checked alone"
    fi
}
