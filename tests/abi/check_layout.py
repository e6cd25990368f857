#!/usr/bin/python3
"""Compiles tests/abi/layout.c (-fsyntax-only) as C11 and C++17, against the
live header and the frozen copy of ABI 1.3, with this machine's gcc/g++
and with the aarch64 and armhf cross compilers: the layout table must hold
on every architecture a board runs. A cross compiler that is missing is
skipped, unless DUET_ABI_CROSS_REQUIRED=1 (tools/test's ARM stage)."""
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
LIVE = os.path.join(HERE, '..', '..', 'core', 'include')
FROZEN = os.path.join(HERE, 'v1.3')
ARCHES = [('native', ''), ('aarch64', 'aarch64-linux-gnu-'), ('armhf', 'arm-linux-gnueabihf-')]


def main():
    required = os.environ.get('DUET_ABI_CROSS_REQUIRED') == '1'
    checked = 0
    failed = False
    for arch, prefix in ARCHES:
        for lang, tool, std, src in (('C11', 'gcc', '-std=c11', 'layout.c'),
                                     ('C++17', 'g++', '-std=c++17', 'layout.cpp')):
            compiler = prefix + tool
            if not shutil.which(compiler):
                print('%s: %s is missing, skipped' % (arch, compiler))
                failed |= required or not prefix
                continue
            for header, extra in ((LIVE, []), (FROZEN, ['-DDUET_LAYOUT_EXACT'])):
                cmd = [compiler, std, '-fsyntax-only', '-Werror', '-pedantic', '-I', header] + extra + \
                      [os.path.join(HERE, src)]
                proc = subprocess.run(cmd, capture_output=True, text=True)
                print('%s %s %s: %s' % (arch, lang, os.path.relpath(header, HERE),
                                        'ok' if proc.returncode == 0 else 'FAILED'))
                if proc.returncode != 0:
                    print(proc.stderr)
                    failed = True
                checked += 1
    return 1 if failed or not checked else 0


if __name__ == '__main__':
    sys.exit(main())
