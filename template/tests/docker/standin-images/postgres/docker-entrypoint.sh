#!/usr/bin/env bash
# Stand-in for the official postgres image's docker-entrypoint.sh: on an empty data directory,
# initialise it from POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB (or their *_FILE forms), accept
# password logins from every host, run /docker-entrypoint-initdb.d, then run the server.
set -Eeo pipefail

# Each variable may come from a file instead (POSTGRES_PASSWORD_FILE names it, e.g. a Docker secret).
file_env() {
    local var="$1" file_var="${1}_FILE" default="${2:-}"
    if [[ -n "${!var:-}" && -n "${!file_var:-}" ]]; then
        echo >&2 "error: both $var and $file_var are set (but are exclusive)"
        exit 1
    fi
    local value="$default"
    if [[ -n "${!var:-}" ]]; then
        value="${!var}"
    elif [[ -n "${!file_var:-}" ]]; then
        value="$(<"${!file_var}")"
    fi
    export "$var"="$value"
    unset "$file_var"
}

if [[ "${1:0:1}" == "-" ]]; then
    set -- postgres "$@"
fi

if [[ "$1" == "postgres" && "$(id -u)" == "0" ]]; then
    mkdir -p "$PGDATA"
    chown -R postgres "$PGDATA"
    chmod 00700 "$PGDATA"
    exec gosu postgres "${BASH_SOURCE[0]}" "$@"
fi

if [[ "$1" == "postgres" && ! -s "$PGDATA/PG_VERSION" ]]; then
    file_env POSTGRES_PASSWORD
    file_env POSTGRES_USER postgres
    file_env POSTGRES_DB "$POSTGRES_USER"
    file_env POSTGRES_INITDB_ARGS
    method="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"
    if [[ -z "$POSTGRES_PASSWORD" && "$method" != "trust" ]]; then
        echo >&2 "Error: Database is uninitialized and superuser password is not specified."
        echo >&2 "       Set POSTGRES_PASSWORD to a non-empty value for the superuser."
        exit 1
    fi
    # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS holds several arguments
    initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
        --auth-local=trust --auth-host="$method" $POSTGRES_INITDB_ARGS
    printf '\nhost all all all %s\n' "$method" >>"$PGDATA/pg_hba.conf"

    # A temporary server on the socket only: nothing outside can connect while it is set up.
    pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p 5432" -w start
    psql=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --dbname postgres)
    if [[ "$POSTGRES_DB" != "postgres" ]]; then
        "${psql[@]}" --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
    fi
    for f in /docker-entrypoint-initdb.d/*; do
        case "$f" in
            *.sh) echo "running $f"; . "$f" ;;
            *.sql) echo "running $f"; "${psql[@]}" --dbname "$POSTGRES_DB" -f "$f" ;;
            *.sql.gz) echo "running $f"; gunzip -c "$f" | "${psql[@]}" --dbname "$POSTGRES_DB" ;;
            *) ;;
        esac
    done
    pg_ctl -D "$PGDATA" -m fast -w stop
    echo "PostgreSQL init process complete; ready for start up."
fi

exec "$@"
