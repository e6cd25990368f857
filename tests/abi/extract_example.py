#!/usr/bin/python3
"""Writes the example in duet/plugin.hpp's opening comment (between BEGIN
EXAMPLE and END EXAMPLE) to a .cpp file, so the build compiles it and the
integration tests load it: the example a newcomer copies must work.

    extract_example.py core/include/duet/plugin.hpp out.cpp
"""
import sys


def main():
    source, target = sys.argv[1], sys.argv[2]
    lines, inside = [], False
    with open(source) as f:
        for line in f:
            text = line.rstrip('\n')
            if text == '// BEGIN EXAMPLE':
                inside = True
            elif text == '// END EXAMPLE':
                break
            elif inside:
                lines.append(text[3:] if text.startswith('// ') else text[2:])
    if not lines:
        sys.exit('%s: no example between "// BEGIN EXAMPLE" and "// END EXAMPLE"' % source)
    with open(target, 'w') as f:
        f.write('// Extracted from %s by tests/abi/extract_example.py.\n' % source.split('/')[-1])
        f.write('\n'.join(lines) + '\n')


if __name__ == '__main__':
    main()
