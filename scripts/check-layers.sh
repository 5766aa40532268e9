#!/usr/bin/env bash
# Fails when a folder includes a folder above it: each folder is one library and a layer, and may include only
# itself and the layers below it (the order of add_subdirectory in CMakeLists.txt, bottom first). The public
# headers in include/axfold/ include no project header; only api/ and apps/ include them. A strict order
# leaves no cycle between folders. Run from anywhere; prints every offending #include and exits 1.
set -euo pipefail
cd "$(dirname "$0")/.."
layers=(kernels parallel evoformer structure io model pipeline training api python apps)
declare -A rank
for i in "${!layers[@]}"; do rank[${layers[$i]}]=$i; done
rank[axfold]=${rank[api]}  # #include "axfold/axfold.h": the API's public headers

# The sources (tests excluded): git's list in a checkout, else every file outside build directories.
list_sources() {
    if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        git ls-files --cached --others --exclude-standard -- '*.h' '*.hpp' '*.cpp' '*.c' '*.cu' '*.cuh'
    else
        find . -type f \( -name '*.h' -o -name '*.hpp' -o -name '*.cpp' -o -name '*.c' -o -name '*.cu' -o -name '*.cuh' \) |
            sed 's|^\./||'
    fi | grep -vE '^(tests|build[^/]*|out)/'
}

bad=0
while IFS= read -r file; do
    top=${file%%/*}
    if [ "$top" = include ]; then
        if grep -nE '^\s*#\s*include\s+[<"](kernels|parallel|evoformer|structure|io|model|pipeline|training|api|python|apps)/' "$file" >/dev/null; then
            echo "$file: a public header includes a project header:"
            grep -nE '^\s*#\s*include\s+[<"](kernels|parallel|evoformer|structure|io|model|pipeline|training|api|python|apps)/' "$file"
            bad=1
        fi
        continue
    fi
    [ -n "${rank[$top]+x}" ] || { echo "$file: folder '$top' is not a layer in scripts/check-layers.sh"; bad=1; continue; }
    while IFS=: read -r line inc; do
        dir=${inc%%/*}
        [ "$dir" = "$inc" ] && continue  # a file beside it
        [ -n "${rank[$dir]+x}" ] || continue  # a system or third-party header
        if [ "${rank[$dir]}" -gt "${rank[$top]}" ]; then
            echo "$file:$line: $top (layer ${rank[$top]}) includes $inc from $dir (layer ${rank[$dir]}), above it"
            bad=1
        fi
    done < <(grep -nE '^\s*#\s*include\s+[<"][^>"]+[>"]' "$file" | sed -E 's/^([0-9]+):[^<"]*[<"]([^>"]+)[>"].*/\1:\2/')
done < <(list_sources)

if [ "$bad" -ne 0 ]; then
    echo "check-layers: upward includes found (layers, bottom first: ${layers[*]})"
    exit 1
fi
echo "check-layers: every #include points down (layers, bottom first: ${layers[*]})"
