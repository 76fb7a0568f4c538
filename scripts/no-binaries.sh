#!/usr/bin/env bash
# no-binaries.sh: fail when git tracks an executable binary (ELF, Mach-O, PE,
# or a Go archive). Build outputs belong in .gitignore, not in the repository.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

found=0
while IFS= read -r -d '' f; do
	[[ -f "$f" ]] || continue
	magic=$(head -c 8 "$f" | od -An -tx1 | tr -d ' \n')
	case "$magic" in
	7f454c46*) kind=ELF ;;
	feedface* | feedfacf* | cefaedfe* | cffaedfe* | cafebabe*) kind=Mach-O ;;
	4d5a*) kind=PE ;;
	213c617263683e0a) kind="ar archive" ;;
	*) continue ;;
	esac
	echo "tracked binary ($kind): $f" >&2
	found=1
done < <(git ls-files -z)
if ((found)); then
	echo "remove it with git rm --cached and ignore it in .gitignore" >&2
	exit 1
fi
