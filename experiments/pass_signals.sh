# Sourced by the study runners (run_queue.sh, run_pinned.sh): run one command in the background
# and pass a SIGTERM or SIGINT sent to the runner on to it as SIGTERM, so that an awmp run stops
# after its current step with a checkpoint. A runner started in the foreground would instead die
# at once and leave its run training, unsupervised. A copy that also reached the run through the
# process group is taken by awmp as the same stop (awmp.trainer.Signals).
#   run_child CMD ...   sets rc (the command's exit status) and stop (0, or 143/130 if a signal
#                       came: the runner then stops its queue with that status)
stop=0
child=""
_pass_on() {
  stop=$1
  if [[ -n "$child" ]]; then kill -TERM "$child" 2>/dev/null; fi
}
trap '_pass_on 143' TERM
trap '_pass_on 130' INT
run_child() {
  "$@" &
  child=$!
  if (( stop )); then kill -TERM "$child" 2>/dev/null; fi  # a signal came before child was set
  wait "$child"; rc=$?
  # A signal interrupts `wait`: wait again, for the run to write its checkpoint and exit.
  if (( stop )); then wait "$child"; rc=$?; fi
  child=""
}
