# bash completion for runctl(1)                            -*- shell-script -*-
# Installed as share/bash-completion/completions/runctl. Needs only bash
# (bash-completion's helpers are not used). Job ids come from
# `runctl list --json`, asked quietly of the server the command line names
# ($RUNRPC_COMPLETION_TIMEOUT seconds at most, default 2); nothing is
# offered when it does not answer.

_runctl_global_value_opts='--addr --tls-cert --tls-key --ca --server-name --token --hosts
  --parallel --host-timeout --connect-timeout --out-dir'
_runctl_global_opts="$_runctl_global_value_opts --allow-insecure -v --verbose
  --no-session-cache --compress -h --help --version"
_runctl_verbs='exec start status logs wait signal stop list image run attach send help'
_runctl_limit_opts='--max-cpu --max-memory --max-pids --max-rbps --max-wbps --max-riops
  --max-wiops -max_cpu_bandwidth -max_memory_usage -max_rbps -max_wbps -max_riops -max_wiops'
_runctl_sandbox_opts='--profile --rootfs --image --bind --net --hostname --user'
_runctl_run_opts="--env --workdir --timeout --timeout-grace $_runctl_limit_opts
  $_runctl_sandbox_opts --help"
_runctl_signals='HUP INT QUIT ILL TRAP ABRT BUS FPE KILL USR1 SEGV USR2 PIPE ALRM TERM
  STKFLT CHLD CONT STOP TSTP TTIN TTOU URG XCPU XFSZ VTALRM PROF WINCH IO PWR SYS'

# The flags of VERB (SUB: image's subcommand).
_runctl_verb_opts() {
  case $1 in
  exec) echo "--in -t -tt --tty -i --interactive $_runctl_run_opts" ;;
  start) echo "-t --tty -i --interactive --tag $_runctl_run_opts" ;;
  run) echo "--image --rm -t -tt --tty -i --interactive $_runctl_run_opts" ;;
  status) echo '--json --help' ;;
  logs) echo '-f --follow --stdout --stderr --tail --offset -t --timestamps --since --help' ;;
  wait | signal) echo '--help' ;;
  attach) echo '--detach-keys --no-stdin --replay --help' ;;
  send) echo '--close --help' ;;
  stop) echo '--grace --help' ;;
  list) echo '--json --state --tag --limit --oldest-first --help' ;;
  image)
    case $2 in
    import) echo '--name --format --json --help' ;;
    ls) echo '--json --help' ;;
    *) echo '--help' ;;
    esac
    ;;
  esac
}

# Does OPT of VERB take a value (the next word)?
_runctl_takes_value() {
  case $1 in
  --addr | --tls-cert | --tls-key | --ca | --server-name | --token) return 0 ;;
  --hosts | --parallel | --host-timeout | --connect-timeout | --out-dir) return 0 ;;
  --env | --workdir | --timeout | --timeout-grace | --tag | --profile | --rootfs | --image | \
    --bind | --net | --hostname | --user | --max-* | -max_*) return 0 ;;
  --tail | --offset | --since | --grace | --state | --limit | --name | --format | --in) return 0 ;;
  --detach-keys | --replay) return 0 ;;
  esac
  return 1
}

# COMPREPLY from the words of $1 that start with $2.
_runctl_reply() {
  local IFS=$' \t\n'
  # shellcheck disable=SC2207 # compgen's words have no spaces
  COMPREPLY=($(compgen -W "$1" -- "$2"))
}

_runctl_files() {
  compopt -o filenames 2>/dev/null
  local IFS=$'\n'
  # shellcheck disable=SC2207
  COMPREPLY=($(compgen -f -- "$1"))
}

_runctl_dirs() {
  compopt -o filenames 2>/dev/null
  local IFS=$'\n'
  # shellcheck disable=SC2207
  COMPREPLY=($(compgen -d -- "$1"))
}

# Job ids (or image names with "images") from the server named by the
# connection flags in _runctl_conn; extra arguments go to list.
_runctl_server_words() {
  local what=$1 out re
  shift
  local runctl=${_runctl_prog:-runctl}
  command -v "$runctl" >/dev/null 2>&1 || return 0
  local -a to=()
  command -v timeout >/dev/null 2>&1 && to=(timeout "${RUNRPC_COMPLETION_TIMEOUT:-2}")
  if [[ $what == images ]]; then
    out=$("${to[@]}" "$runctl" "${_runctl_conn[@]}" image ls --json 2>/dev/null </dev/null) ||
      return 0
    re='"names": *\[([^]]*)\]'
    local names
    while [[ $out =~ $re ]]; do
      names=${BASH_REMATCH[1]//[\",]/ }
      echo "$names"
      out=${out#*"${BASH_REMATCH[0]}"}
    done
    return 0
  fi
  out=$("${to[@]}" "$runctl" "${_runctl_conn[@]}" list --json --limit 500 "$@" 2>/dev/null \
    </dev/null) || return 0
  re='"job_id": *"([0-9A-Za-z]+)"'
  while [[ $out =~ $re ]]; do
    echo "${BASH_REMATCH[1]}"
    out=${out#*"${BASH_REMATCH[0]}"}
  done
}

# Values of OPT.
_runctl_complete_value() {
  local opt=$1 cur=$2
  case $opt in
  --state) _runctl_reply 'running exited killed failed' "$cur" ;;
  --profile) _runctl_reply 'host default strict' "$cur" ;;
  --net) _runctl_reply 'none host' "$cur" ;;
  --format) _runctl_reply 'auto oci-archive docker-archive rootfs' "$cur" ;;
  --workdir | --rootfs | --out-dir) _runctl_dirs "$cur" ;;
  --tls-cert | --tls-key | --ca | --hosts) _runctl_files "$cur" ;;
  --image) _runctl_reply "$(_runctl_server_words images)" "$cur" ;;
  --in) _runctl_reply "$(_runctl_server_words ids --state running)" "$cur" ;;
  --addr) _runctl_reply 'unix:/run/runrpc/rund.sock 127.0.0.1:7734 unix: h2c:' "$cur" ;;
  --max-rbps | --max-wbps | --max-riops | --max-wiops) ;;
  *) COMPREPLY=() ;;
  esac
}

# The words up to the cursor, split at blanks only: bash also splits at '='
# and ':' (COMP_WORDBREAKS), which would cut --addr=unix:/path in three.
_runctl_words() {
  if [[ -n ${COMP_LINE-} ]]; then
    local line=${COMP_LINE:0:${COMP_POINT:-${#COMP_LINE}}}
    read -ra words <<<"$line"
    if [[ $line == *[[:space:]] ]] || ((${#words[@]} == 0)); then
      words+=("")
    fi
  else
    words=("${COMP_WORDS[@]:0:COMP_CWORD+1}")
  fi
}

_runctl() {
  local -a words
  _runctl_words
  local cword=$((${#words[@]} - 1))
  local cur=${words[cword]} prev=
  ((cword > 0)) && prev=${words[cword - 1]}
  if [[ $cur == --*=* ]]; then
    prev=${cur%%=*} cur=${cur#*=}
  fi
  COMPREPLY=()
  _runctl_prog=${words[0]}
  _runctl_conn=()

  # the global flags, the verb, image's subcommand, the positional words
  local i=1 w verb= sub= npos=0 dashdash=0
  while ((i < cword)); do
    w=${words[i]}
    if [[ -z $verb ]]; then
      case $w in
      --hosts | --parallel | --host-timeout | --connect-timeout | --out-dir) ((i++)) ;;
      --addr | --tls-cert | --tls-key | --ca | --server-name | --token)
        if ((i + 1 < cword)); then
          _runctl_conn+=("$w" "${words[i + 1]}")
        fi
        ((i++))
        ;;
      --*=* | --allow-insecure | --no-session-cache | --compress) _runctl_conn+=("$w") ;;
      -*) ;;
      *) verb=$w ;;
      esac
    elif ((dashdash)); then
      ((npos++))
    elif [[ $w == -- ]]; then
      dashdash=1
    elif [[ $w == -* ]]; then
      if [[ $w != *=* ]] && _runctl_takes_value "$w"; then
        ((i++))
      fi
    elif [[ $verb == image && -z $sub ]]; then
      sub=$w
    else
      ((npos++))
      # exec, start, run: what follows CMD is its arguments
      [[ $verb == exec || $verb == start || $verb == run ]] && dashdash=1
    fi
    ((i++))
  done

  _runctl_complete "$cur" "$prev"
  # bash replaces only what follows the last ':' of the word: drop the rest
  if [[ -n ${COMP_LINE-} && $cur == *:* && $COMP_WORDBREAKS == *:* ]]; then
    local colon=${cur%"${cur##*:}"} k
    for k in "${!COMPREPLY[@]}"; do
      COMPREPLY[k]=${COMPREPLY[k]#"$colon"}
    done
  fi
  return 0
}

# COMPREPLY for CUR after PREV, given verb, sub, npos and dashdash.
_runctl_complete() {
  local cur=$1 prev=$2
  if [[ -z $verb ]]; then
    case $prev in
    --addr | --tls-cert | --tls-key | --ca | --server-name | --token)
      _runctl_complete_value "$prev" "$cur"
      ;;
    *)
      if [[ $cur == -* ]]; then
        _runctl_reply "$_runctl_global_opts" "$cur"
      else
        _runctl_reply "$_runctl_verbs" "$cur"
      fi
      ;;
    esac
    return 0
  fi

  # after --: the command, then its arguments (files)
  if ((dashdash)); then
    if ((npos == 0)); then
      _runctl_reply "$(compgen -c -- "$cur" | sort -u)" "$cur"
    else
      _runctl_files "$cur"
    fi
    return 0
  fi

  if [[ $prev == -* ]] && _runctl_takes_value "$prev"; then
    _runctl_complete_value "$prev" "$cur"
    return 0
  fi
  if [[ $cur == -* ]]; then
    _runctl_reply "$(_runctl_verb_opts "$verb" "$sub")" "$cur"
    return 0
  fi

  case $verb in
  help) ((npos == 0)) && _runctl_reply "$_runctl_verbs" "$cur" ;;
  status | logs | wait) ((npos == 0)) && _runctl_reply "$(_runctl_server_words ids)" "$cur" ;;
  stop | attach | send) ((npos == 0)) && _runctl_reply "$(_runctl_server_words ids --state running)" "$cur" ;;
  signal)
    if ((npos == 0)); then
      _runctl_reply "$(_runctl_server_words ids --state running)" "$cur"
    elif ((npos == 1)); then
      if [[ $cur == [Ss][Ii][Gg]* ]]; then
        _runctl_reply "$(printf 'SIG%s ' $_runctl_signals)" "${cur^^}"
      else
        _runctl_reply "$_runctl_signals" "${cur^^}"
      fi
    fi
    ;;
  image)
    if [[ -z $sub ]]; then
      _runctl_reply 'import ls inspect rm' "$cur"
    elif [[ $sub == import ]] && ((npos == 0)); then
      _runctl_files "$cur"
    elif [[ $sub == inspect || $sub == rm ]] && ((npos == 0)); then
      _runctl_reply "$(_runctl_server_words images)" "$cur"
    fi
    ;;
  exec | start | run)
    # CMD without --: a command, then files
    if ((npos == 0)); then
      _runctl_reply "$(compgen -c -- "$cur" | sort -u)" "$cur"
    else
      _runctl_files "$cur"
    fi
    ;;
  esac
  return 0
}

complete -F _runctl runctl
