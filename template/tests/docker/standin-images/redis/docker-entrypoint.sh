#!/bin/sh
# Stand-in for the official redis image's docker-entrypoint.sh: flags alone run redis-server, and
# the server drops root. Debian's redis-server is built with protected mode on; the official image's
# is built with it off, so it is turned off here unless the command sets it.
set -e

if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
    set -- redis-server "$@"
fi

if [ "$1" = "redis-server" ] && [ "$(id -u)" = "0" ]; then
    find . \! -user redis -exec chown redis '{}' +
    exec gosu redis "$0" "$@"
fi

if [ "$1" = "redis-server" ]; then
    case " $* " in
        *" --protected-mode "*) ;;
        *) set -- "$@" --protected-mode no ;;
    esac
fi

exec "$@"
