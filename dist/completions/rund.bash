# bash completion for rund(8)                              -*- shell-script -*-
# Installed as share/bash-completion/completions/rund. Needs only bash.

_rund_opts='--config --listen --state-dir --max-log-bytes --log-level --fsync --tls-cert --tls-key
  --client-ca --tls12 --token-file --allow-insecure-tokens --admin --secrets-dir --retention
  --no-cgroups --quota-running --quota-jobs --quota-followers --fd-reserve --default-profile
  --min-profile --bind-allow --image-roots --idle-timeout --max-connections
  --max-conns-per-peer --metrics --audit-log --help --version'
_rund_subcommands='certs tokens secrets image'

# The verbs of SUBCOMMAND.
_rund_verbs() {
  case $1 in
  certs) echo 'init server issue' ;;
  tokens) echo 'create revoke list' ;;
  secrets) echo 'allow deny list' ;;
  image) echo 'import ls inspect rm gc' ;;
  esac
}

# The flags of SUBCOMMAND VERB.
_rund_sub_opts() {
  case $1 in
  certs)
    case $2 in
    issue) echo '--san --days --out --state-dir --help' ;;
    server) echo '--san --state-dir --help' ;;
    *) echo '--state-dir --help' ;;
    esac
    ;;
  tokens) echo '--token-file --state-dir --help' ;;
  secrets) echo '--secrets-dir --state-dir --help' ;;
  image)
    case $2 in
    import) echo '--name --format --json --state-dir --help' ;;
    ls) echo '--json --state-dir --help' ;;
    *) echo '--state-dir --help' ;;
    esac
    ;;
  esac
}

_rund_takes_value() {
  case $1 in
  --config | --metrics | --audit-log | --listen | --state-dir | --max-log-bytes | --log-level | --tls-cert | \
    --tls-key | --client-ca | \
    --token-file | --admin | --secrets-dir | --retention | --quota-running | --quota-jobs | \
    --quota-followers | --fd-reserve | --default-profile | --min-profile | --bind-allow | \
    --image-roots | --idle-timeout | --max-connections | --max-conns-per-peer | --san | --days | \
    --out | --name | --format)
    return 0
    ;;
  esac
  return 1
}

_rund_reply() {
  local IFS=$' \t\n'
  # shellcheck disable=SC2207 # compgen's words have no spaces
  COMPREPLY=($(compgen -W "$1" -- "$2"))
}

_rund_files() {
  compopt -o filenames 2>/dev/null
  local IFS=$'\n'
  # shellcheck disable=SC2207
  COMPREPLY=($(compgen "$1" -- "$2"))
}

_rund_value() {
  local opt=$1 cur=$2
  case $opt in
  --listen | --admin | --san) compopt -o nospace 2>/dev/null ;;
  esac
  case $opt in
  --log-level) _rund_reply 'debug info warn error' "$cur" ;;
  --default-profile | --min-profile) _rund_reply 'host default strict' "$cur" ;;
  --image-roots) _rund_reply 'auto overlay copy' "$cur" ;;
  --format) _rund_reply 'auto oci oci-archive docker-archive rootfs' "$cur" ;;
  --listen) _rund_reply 'unix:/run/runrpc/rund.sock 127.0.0.1:7734 0.0.0.0:7734 unix: h2c:' "$cur" ;;
  --admin) _rund_reply 'uid: token: san:uri: san:dns: san:email: san:ip:' "$cur" ;;
  --san) _rund_reply 'dns: ip: uri: email:' "$cur" ;;
  --state-dir | --secrets-dir | --bind-allow | --out) _rund_files -d "$cur" ;;
  --tls-cert | --tls-key | --client-ca | --token-file) _rund_files -f "$cur" ;;
  --config)
    _rund_files -f "$cur"
    # shellcheck disable=SC2207
    COMPREPLY+=($(compgen -W none -- "$cur"))
    ;;
  --metrics) _rund_reply '127.0.0.1:9734' "$cur" ;;
  --audit-log)
    _rund_files -f "$cur"
    # shellcheck disable=SC2207
    COMPREPLY+=($(compgen -W stderr -- "$cur"))
    ;;
  *) COMPREPLY=() ;;
  esac
}

_rund() {
  local -a words
  if [[ -n ${COMP_LINE-} ]]; then
    local line=${COMP_LINE:0:${COMP_POINT:-${#COMP_LINE}}}
    read -ra words <<<"$line"
    if [[ $line == *[[:space:]] ]] || ((${#words[@]} == 0)); then
      words+=("")
    fi
  else
    words=("${COMP_WORDS[@]:0:COMP_CWORD+1}")
  fi
  local cword=$((${#words[@]} - 1))
  local cur=${words[cword]} prev=
  ((cword > 0)) && prev=${words[cword - 1]}
  if [[ $cur == --*=* ]]; then
    prev=${cur%%=*} cur=${cur#*=}
  fi
  COMPREPLY=()

  local sub= verb= npos=0 i
  if ((cword > 1)); then
    case ${words[1]} in
    certs | tokens | secrets | image) sub=${words[1]} ;;
    esac
  fi
  if [[ -n $sub ]]; then
    for ((i = 2; i < cword; i++)); do
      if [[ ${words[i]} == -* ]]; then
        [[ ${words[i]} != *=* ]] && _rund_takes_value "${words[i]}" && ((i++))
      elif [[ -z $verb ]]; then
        verb=${words[i]}
      else
        ((npos++))
      fi
    done
  fi

  # the seed's rund serve -addr A -ca F -cert F -key F [rund's flags]
  local seed=
  [[ ${words[1]} == serve ]] && ((cword > 1)) && seed='-addr -ca -cert -key'
  if [[ -n $seed && ($prev == -addr || $prev == -ca || $prev == -cert || $prev == -key) ]]; then
    [[ $prev != -addr ]] && _rund_files -f "$cur"
  elif [[ $prev == -* ]] && _rund_takes_value "$prev"; then
    _rund_value "$prev" "$cur"
  elif [[ -z $sub ]]; then
    if [[ $cur == -* ]]; then
      _rund_reply "$seed $_rund_opts" "$cur"
    elif ((cword == 1)); then
      _rund_reply "$_rund_subcommands" "$cur"
    fi
  elif [[ $cur == -* ]]; then
    _rund_reply "$(_rund_sub_opts "$sub" "$verb")" "$cur"
  elif [[ -z $verb ]]; then
    _rund_reply "$(_rund_verbs "$sub")" "$cur"
  elif [[ $sub == image && $verb == import ]] && ((npos == 0)); then
    _rund_files -f "$cur"
  elif [[ $sub == secrets && ($verb == allow || $verb == deny) ]] && ((npos == 1)); then
    _rund_reply 'uid: token: san:uri: san:dns: san:email: san:ip:' "$cur"
  fi
  if [[ -n ${COMP_LINE-} && $cur == *:* && $COMP_WORDBREAKS == *:* ]]; then
    local colon=${cur%"${cur##*:}"} k
    for k in "${!COMPREPLY[@]}"; do
      COMPREPLY[k]=${COMPREPLY[k]#"$colon"}
    done
  fi
  return 0
}

complete -F _rund rund
