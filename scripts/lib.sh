# Shared shell functions of scripts/dev and scripts/test: install missing
# Debian packages and start throwaway PostgreSQL and Redis servers.
# Sourced, not run.

log() { printf '\033[1m==>\033[0m %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# ensure_packages CMD:PACKAGE… installs with apt the packages whose command
# is missing (PostgreSQL's binaries live outside PATH on Debian).
ensure_packages() {
  local missing=() pair cmd pkg
  for pair in "$@"; do
    cmd=${pair%%:*} pkg=${pair#*:}
    case $cmd in
      initdb) [ -n "$(pg_bindir)" ] && continue ;;
      *) command -v "$cmd" >/dev/null 2>&1 && continue ;;
    esac
    missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" = 0 ] || die "missing ${missing[*]}: install them (apt-get install ${missing[*]}) or run as root"
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq "${missing[@]}" >/dev/null
}

# pg_bindir prints the directory of the newest installed PostgreSQL binaries.
# (An explicit "return 0": in an EXIT trap a bare return gives the status
# the script exits with, and stop_postgres then skipped the stop after any
# failure, leaving the server running.)
pg_bindir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -n "$d" ] && [ -x "$d/initdb" ]; then echo "$d"; return 0; fi
  command -v initdb >/dev/null 2>&1 && dirname "$(command -v initdb)"
}

# as_postgres runs a command as the postgres user when we are root
# (initdb and postgres refuse to run as root).
as_postgres() {
  # From /: the current directory may be out of the postgres user's reach.
  if [ "$(id -u)" = 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# free_port prints a TCP port on 127.0.0.1 that nothing listens on, below
# the kernel's ephemeral range (outgoing connections take ports there, and a
# server could not bind one of those).
free_port() {
  local p i low
  low=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
  for i in $(seq 1 50); do
    p=$(( 20000 + RANDOM % (low - 20000) ))
    port_open "$p" || { echo "$p"; return; }
  done
  die "no free port found"
}

# start_postgres DATADIR PORT [fast]: initialises DATADIR when empty and
# starts a server on 127.0.0.1:PORT with trust authentication for the local
# "postgres" role. "fast" turns durability off (for tests).
start_postgres() {
  local dir=$1 port=$2 mode=${3:-} bin
  bin=$(pg_bindir) || die "PostgreSQL binaries not found"
  mkdir -p "$dir"
  if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$dir"; chmod 700 "$dir"; fi
  if [ ! -f "$dir/PG_VERSION" ]; then
    as_postgres "$bin/initdb" -D "$dir" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir.initdb.log" 2>&1 \
      || { cat "$dir.initdb.log" >&2; die "initdb failed"; }
  fi
  local opts="-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=300"
  if [ "$mode" = fast ]; then
    opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  fi
  as_postgres "$bin/pg_ctl" -D "$dir" -o "$opts" -l "$dir/server.log" -w -t 60 start >/dev/null \
    || { cat "$dir/server.log" >&2; die "PostgreSQL did not start"; }
}

# stop_postgres DIR [immediate]: stops the server of DIR, after its
# sessions end and its data is written (a clean stop: the next start needs
# no recovery, and sequences go on where they were), or at once for data
# thrown away.
stop_postgres() {
  local dir=$1 mode=${2:-fast} bin
  bin=$(pg_bindir) || return 0
  [ -f "$dir/postmaster.pid" ] && as_postgres "$bin/pg_ctl" -D "$dir" -m "$mode" -w stop >/dev/null 2>&1 || true
}

# start_redis DIR PORT [ephemeral]: a Redis server on 127.0.0.1:PORT keeping
# its data in DIR (or nothing, when ephemeral).
start_redis() {
  local dir=$1 port=$2 mode=${3:-}
  mkdir -p "$dir"
  local args=(--port "$port" --bind 127.0.0.1 --dir "$dir" --daemonize yes
    --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --databases 1024)
  if [ "$mode" = ephemeral ]; then args+=(--save "" --appendonly no); fi
  redis-server "${args[@]}" || die "Redis did not start"
  local i
  for i in $(seq 1 100); do
    redis-cli -p "$port" ping >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  cat "$dir/redis.log" >&2
  die "Redis did not answer on port $port"
}

stop_redis() {
  local dir=$1
  [ -f "$dir/redis.pid" ] && kill "$(cat "$dir/redis.pid")" 2>/dev/null || true
}
