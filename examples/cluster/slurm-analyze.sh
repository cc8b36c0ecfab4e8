#!/bin/bash
# memgen analyze on a SLURM cluster (docs/cluster.md): one array task per shard, then one merge job.
#   sbatch --array=0-7 examples/cluster/slurm-analyze.sh runs/my-run 80000
#   sbatch --dependency=afterok:<array job id> --wrap "memgen merge --run runs/my-run"
# (or let the last line below submit the merge). The array index is the 0-based shard index; the
# array's size is the shard count N. A task that was preempted continues with --resume.
# Steering and sweep shards (memgen steer-eval / sweep --shard "$I/$N", no --resume) run the same
# way; see docs/cluster.md for the one-line sbatch --wrap form.
#SBATCH --job-name=memgen-analyze
#SBATCH --cpus-per-task=4
#SBATCH --mem=8G
#SBATCH --time=04:00:00
#SBATCH --output=memgen-analyze-%A_%a.log
set -euo pipefail
RUN=${1:?usage: sbatch --array=0-(N-1) slurm-analyze.sh RUN PAIRS}
PAIRS=${2:-2000}
N=${SLURM_ARRAY_TASK_COUNT:?submit with --array=0-(N-1)}
I=${SLURM_ARRAY_TASK_ID}
# --resume continues this shard's own folder if a previous attempt left one (and starts it otherwise).
memgen analyze --run "$RUN" --shard "$I/$N" --pairs "$PAIRS" --threads "${SLURM_CPUS_PER_TASK:-1}" --resume
# The task with the highest index submits the merge, to run once every task succeeded.
if [ "$I" -eq "$SLURM_ARRAY_TASK_MAX" ]; then
  sbatch --dependency="afterok:${SLURM_ARRAY_JOB_ID}" --job-name=memgen-merge --wrap "memgen merge --run $RUN --threads ${SLURM_CPUS_PER_TASK:-1}"
fi
