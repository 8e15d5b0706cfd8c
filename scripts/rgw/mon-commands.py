#!/usr/bin/python3
"""Runs a batch of Ceph monitor commands over ONE librados connection (much faster than one
`ceph` CLI process per command). Usage: mon-commands.py CEPH_CONF 'prefix args...' ...
Each command is "prefix word(s)" followed by key=value pairs, e.g.
  'osd pool create pool=foo pg_num=8'; `args=a,b` is sent as a list. Values that look like integers are sent as integers.
Retries the connection and each command a few times: a fresh cluster may answer EPERM
("wrong fsid") or ENOENT until every daemon has the current monmap/osdmap.
Must run with the system python (/usr/bin/python3), which has the `rados` module."""
import json
import sys
import time

import rados

def parse(spec):
    words = spec.split()
    prefix, args = [], {}
    for w in words:
        if '=' in w:
            k, v = w.split('=', 1)
            if k == 'args':  # list-valued argument, e.g. crush location "args=root=default"
                args[k] = v.split(',')
            elif v.lstrip('-').isdigit():
                args[k] = int(v)
            elif v.replace('.', '', 1).isdigit():
                args[k] = float(v)
            elif v in ('true', 'false'):
                args[k] = v == 'true'
            else:
                args[k] = v
        else:
            prefix.append(w)
    args['prefix'] = ' '.join(prefix)
    args['format'] = 'json'
    return args


def connect(conf):
    last = None
    for _ in range(20):
        try:
            cluster = rados.Rados(conffile=conf)
            cluster.connect(timeout=10)
            return cluster
        except Exception as e:  # noqa: BLE001 - any failure of a starting cluster is retried
            last = e
            time.sleep(0.25)
    raise SystemExit(f'mon-commands: cannot connect to the monitor: {last}')


def main():
    conf = sys.argv[1]
    cluster = connect(conf)
    try:
        for spec in sys.argv[2:]:
            cmd = parse(spec)
            for attempt in range(40):
                ret, out, err = cluster.mon_command(json.dumps(cmd), b'', timeout=20)
                if ret == 0:
                    if out:
                        sys.stdout.write(out.decode() + '\n')
                    break
                # EEXIST-like answers are success for idempotent setup
                if 'already exists' in err or 'already' in err and 'exist' in err:
                    break
                time.sleep(0.25)
            else:
                raise SystemExit(f'mon-commands: "{spec}" failed ({ret}): {err}')
    finally:
        cluster.shutdown()


main()
