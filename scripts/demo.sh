#!/usr/bin/env bash
# The README's first command ends here: one job on the built-in default profile, then a sample
# batch of 1,000 jobs (configs/examples/jobs.jsonl, repeated) through the template pool.
set -euo pipefail
cd "$(dirname "$0")/.."
jailpool=${JAILPOOL:-build/jailpool}
"$jailpool" run -- /bin/echo "hello from a jail"
echo "--- a sample batch: 1,000 jobs, every kind of verdict, through the pool (-j 2)"
for i in $(seq 100); do
  sed "s/\"id\":\"/\"id\":\"$i-/" configs/examples/jobs.jsonl
done | "$jailpool" batch -j 2 --output /dev/null
