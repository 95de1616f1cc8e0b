#!/bin/bash
# check-module-graph.sh [-v] FILE-OR-DIR...: the call graph between object files, from
# their symbol tables, and its circles.  Module A uses module B when a symbol A leaves
# undefined (nm -u) is one B defines globally (nm -g --defined-only); symbols nobody in
# the set defines (libc, libxbt) are not edges.  A directory stands for its *.o files.
#
# Prints every strongly connected component of more than one module (each is a circle,
# or several sharing modules) with the symbols along its edges, and exits 1 if there is
# one; 0 and "no circle among N modules" otherwise.  -v also prints every edge.
#
# ctest runs it as tools.module_graph on the objects of tools/vmm (the devices' object
# library and xbt-run's own units).  By hand, after a build:
#   scripts/check-module-graph.sh build/tools/CMakeFiles/vmm_devices.dir/vmm \
#                                 build/tools/CMakeFiles/xbt-run.dir/vmm
set -euo pipefail

verbose=0
if [ "${1:-}" = -v ]; then
    verbose=1
    shift
fi
[ $# -gt 0 ] || { echo "usage: $0 [-v] FILE-OR-DIR..." >&2; exit 2; }

# An argument may be a CMake list (paths joined by ';', as ctest passes
# $<TARGET_OBJECTS:...>); a file named twice counts once.
objs=()
IFS=';' read -r -a args <<< "$(IFS=';'; echo "$*")"
for a in "${args[@]}"; do
    [ -n "$a" ] || continue
    if [ -d "$a" ]; then
        for o in "$a"/*.o; do
            [ -e "$o" ] && objs+=("$o")
        done
    elif [ -f "$a" ]; then
        objs+=("$a")
    else
        echo "$0: $a: no such file or directory" >&2
        exit 2
    fi
done
[ ${#objs[@]} -gt 0 ] || { echo "$0: no object files in $*" >&2; exit 2; }
mapfile -t objs < <(printf '%s\n' "${objs[@]}" | awk '!seen[$0]++')

# One line per symbol: "D module symbol" (defined) or "U module symbol" (undefined);
# the module is the file name without .o and the source suffix (pic.c.o -> pic.c).
for o in "${objs[@]}"; do
    mod=$(basename "$o" .o)
    nm -g --defined-only "$o" | awk -v m="$mod" 'NF >= 3 { print "D", m, $3 }'
    nm -u "$o" | awk -v m="$mod" '{ print "U", m, $NF }'
done | awk -v verbose="$verbose" '
$1 == "D" { if (!($3 in owner)) owner[$3] = $2; mods[$2] = 1; next }
$1 == "U" { uses[++nu] = $2 SUBSEP $3; mods[$2] = 1; next }
END {
    for (i = 1; i <= nu; i++) {
        split(uses[i], u, SUBSEP)
        if (!(u[2] in owner) || owner[u[2]] == u[1])
            continue
        a = u[1]; b = owner[u[2]]
        if (!((a, b) in edge)) {
            edge[a, b] = u[2]
            succ[a] = succ[a] " " b
        } else {
            edge[a, b] = edge[a, b] ", " u[2]
        }
    }
    n = 0
    for (m in mods) { n++; name[n] = m }
    # Sorted so that the output is stable.
    for (i = 2; i <= n; i++)
        for (j = i; j > 1 && name[j - 1] > name[j]; j--) { t = name[j]; name[j] = name[j - 1]; name[j - 1] = t }
    if (verbose)
        for (i = 1; i <= n; i++)
            for (j = 1; j <= n; j++)
                if ((name[i], name[j]) in edge)
                    printf "%s -> %s: %s\n", name[i], name[j], edge[name[i], name[j]]
    # Tarjan: every strongly connected component.
    counter = 0; sp = 0; ncomp = 0
    for (i = 1; i <= n; i++)
        if (!(name[i] in index_))
            strong(name[i])
    cyclic = 0
    for (c = 1; c <= ncomp; c++) {
        k = split(comp[c], members, " ")
        if (k < 2)
            continue
        cyclic++
        for (i = 2; i <= k; i++)   # sorted too
            for (j = i; j > 1 && members[j - 1] > members[j]; j--) { t = members[j]; members[j] = members[j - 1]; members[j - 1] = t }
        printf "circle among %d modules:", k
        for (i = 1; i <= k; i++) printf " %s", members[i]
        printf "\n"
        for (i = 1; i <= k; i++)
            for (j = 1; j <= k; j++)
                if ((members[i], members[j]) in edge)
                    printf "  %s -> %s: %s\n", members[i], members[j], edge[members[i], members[j]]
    }
    if (cyclic) {
        printf "%d circle(s) among %d modules\n", cyclic, n
        exit 1
    }
    printf "no circle among %d modules\n", n
}
function strong(v,    ws, w, i, k, c) {
    index_[v] = low[v] = ++counter
    stack[++sp] = v; on[v] = 1
    k = split(succ[v], ws, " ")
    for (i = 1; i <= k; i++) {
        w = ws[i]
        if (!(w in index_)) {
            strong(w)
            if (low[w] < low[v]) low[v] = low[w]
        } else if (on[w] && index_[w] < low[v]) {
            low[v] = index_[w]
        }
    }
    if (low[v] == index_[v]) {
        c = ++ncomp; comp[c] = ""
        do {
            w = stack[sp--]; on[w] = 0
            comp[c] = comp[c] " " w
        } while (w != v)
    }
}
'
