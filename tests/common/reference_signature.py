#!/usr/bin/env python3
"""Independent reference for FreshBooks webhook signatures (FRESHBOOKS.md section 2).

FreshBooks signs the decoded form fields re-serialised with CPython's
json.dumps(dict) (default arguments), HMAC-SHA256 keyed by the verifier, base64.
This script does exactly that with the standard library only; it must never import
project code, so that webhook_signature_reference_test compares the C++ against
something written independently.

Input (argv[1]): JSON lines, each {"verifier": str, "body": str}.
Output (stdout): one line per input line, either
    OK<TAB><base64 signature><TAB><signed message M>
or
    ERROR<TAB><reason>
M produced by json.dumps with ensure_ascii=True is printable ASCII with no tab or
newline, so the format is unambiguous.
"""

import base64
import hashlib
import hmac
import json
import sys
import urllib.parse


def sign(verifier, body):
    pairs = urllib.parse.parse_qsl(body, keep_blank_values=True, strict_parsing=True,
                                   encoding='utf-8', errors='strict')
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError('repeated key')
    message = json.dumps(dict(pairs))
    digest = hmac.new(verifier.encode('utf-8'), message.encode('utf-8'),
                      hashlib.sha256).digest()
    return base64.b64encode(digest).decode('ascii'), message


def main():
    if len(sys.argv) != 2:
        sys.exit('usage: reference_signature.py CASES.jsonl')
    out = []
    with open(sys.argv[1], encoding='utf-8') as f:
        for line in f:
            case = json.loads(line)
            try:
                signature, message = sign(case['verifier'], case['body'])
            except ValueError as e:  # includes UnicodeDecodeError
                out.append('ERROR\t' + repr(e).replace('\t', ' ').replace('\n', ' '))
                continue
            out.append('OK\t' + signature + '\t' + message)
    sys.stdout.write('\n'.join(out) + ('\n' if out else ''))


if __name__ == '__main__':
    main()
