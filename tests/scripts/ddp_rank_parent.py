"""A stand-in for a tuner worker: starts one DDP rank of a trial whose other rank never comes (so the rank
waits in the rendezvous), prints the rank's pid, then waits to be killed."""

import os
import subprocess
import sys
import time

config, port = sys.argv[1], sys.argv[2]
env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=port, WORLD_SIZE="2", NODE_RANK="0")
env.update(LOCAL_RANK="1", RANK="1")
cmd = [sys.executable, "-m", "autoinit.tuner.trials.ddp", "--config", config, "--scheme", "kaiming_normal"]
cmd += ["--gain", "1", "--trial-id", "0", "--result", os.devnull, "--parent", str(os.getpid())]
rank = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(rank.pid, flush=True)
time.sleep(3600)
