#!/usr/bin/env bash
# Make sure a local PostgreSQL server is up on 127.0.0.1:5432 with the role and database the Dagster
# instance uses (deploy/postgres/dagster.yaml). Idempotent: run it as often as you like.
#
#   1. installs Debian's `postgresql` if `pg_ctlcluster` is missing (needs root)
#   2. starts the newest installed cluster (creating `<version>/main` if there is none)
#   3. waits until it accepts connections on 127.0.0.1:5432
#   4. creates the role (LOGIN, CREATEDB, with password) and its database if missing
#
# Names come from the same variables the instance reads; the defaults are the project's:
#   DAGSTER_PG_USERNAME=mmp DAGSTER_PG_PASSWORD=mmp DAGSTER_PG_DB=mmp_dagster DAGSTER_PG_PORT=5432
# Not root: nothing can be installed or started; if a server already answers, that is fine.
set -euo pipefail

HOST=127.0.0.1
PORT=${DAGSTER_PG_PORT:-5432}
ROLE=${DAGSTER_PG_USERNAME:-mmp}
PASSWORD=${DAGSTER_PG_PASSWORD:-mmp}
PASSWORD_SQL=${PASSWORD//\'/\'\'}  # quoted for a SQL string literal
DB=${DAGSTER_PG_DB:-mmp_dagster}
WAIT_S=${MMP_PG_WAIT_S:-30}

say() { echo "postgres: $*"; }
for name in "$ROLE" "$DB"; do
    [[ $name =~ ^[a-z_][a-z0-9_]*$ ]] || { say "refusing the unusual name '$name'" >&2; exit 2; }
done

ready() { pg_isready -q -h "$HOST" -p "$PORT" 2>/dev/null || (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null; }

if [[ $(id -u) -ne 0 ]]; then
    if ready; then
        say "not root; a server already answers on $HOST:$PORT, leaving it as it is"
        exit 0
    fi
    say "not root and nothing answers on $HOST:$PORT: cannot install or start PostgreSQL (tests marked postgres skip)" >&2
    exit 0
fi

# 1. install
if ! command -v pg_ctlcluster >/dev/null; then
    say "installing Debian's postgresql package"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq postgresql >/dev/null
    say "installed"
else
    say "already installed"
fi

# 2. start the newest installed version's cluster
VERSION=$(ls /usr/lib/postgresql | sort -n | tail -1)
[[ -n $VERSION ]] || { say "no server version under /usr/lib/postgresql" >&2; exit 1; }
if ! pg_lsclusters -h | awk -v v="$VERSION" '$1 == v && $2 == "main"' | grep -q .; then
    say "creating cluster $VERSION/main on port $PORT"
    pg_createcluster "$VERSION" main --port "$PORT" >/dev/null
fi
CLUSTER_PORT=$(pg_lsclusters -h | awk -v v="$VERSION" '$1 == v && $2 == "main" {print $3}')
STATUS=$(pg_lsclusters -h | awk -v v="$VERSION" '$1 == v && $2 == "main" {print $4}')
if [[ $CLUSTER_PORT != "$PORT" ]]; then
    say "warning: cluster $VERSION/main is configured for port $CLUSTER_PORT, not $PORT" >&2
fi
if [[ $STATUS == online* ]]; then
    say "cluster $VERSION/main already running"
else
    say "starting cluster $VERSION/main"
    pg_ctlcluster "$VERSION" main start
fi

# 3. wait for connections over TCP on loopback
for ((i = 0; i < WAIT_S * 4; i++)); do
    ready && break
    sleep 0.25
done
ready || { say "nothing accepts connections on $HOST:$PORT after ${WAIT_S}s; see /var/log/postgresql/" >&2; exit 1; }
say "accepting connections on $HOST:$PORT"

# 4. role and database (as the postgres superuser, over the local socket)
psql_su() { (cd / && runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$CLUSTER_PORT" -d postgres -tA "$@"); }
if [[ $(psql_su -c "SELECT 1 FROM pg_roles WHERE rolname = '$ROLE'") == 1 ]]; then
    psql_su -c "ALTER ROLE $ROLE WITH LOGIN CREATEDB PASSWORD '$PASSWORD_SQL'"
    say "role $ROLE exists (password and CREATEDB ensured)"
else
    psql_su -c "CREATE ROLE $ROLE WITH LOGIN CREATEDB PASSWORD '$PASSWORD_SQL'"
    say "created role $ROLE"
fi
if [[ $(psql_su -c "SELECT 1 FROM pg_database WHERE datname = '$DB'") == 1 ]]; then
    say "database $DB exists"
else
    psql_su -c "CREATE DATABASE $DB OWNER $ROLE"
    say "created database $DB (owner $ROLE)"
fi
