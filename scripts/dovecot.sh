#!/bin/sh
# A throwaway Dovecot 2.3 backend for moat's demo and integration tests.
#
#   scripts/dovecot.sh DIR IMAP_PORT POP3_PORT
#
# Writes a self-contained configuration to DIR/dovecot.conf and then runs
# Dovecot in the foreground in place of this script (exec dovecot -F), so
# the caller's pid is Dovecot's master and SIGTERM stops it. Dovecot:
#
#   - listens on 127.0.0.1 only: plaintext IMAP on IMAP_PORT and POP3 on
#     POP3_PORT, nothing else on the network (no imaps/pop3s, no LMTP, no
#     submission); internal services use unix sockets in DIR/run;
#   - has no TLS (ssl = no) and accepts plaintext logins (PLAIN, LOGIN and
#     the protocols' own USER/PASS, LOGIN);
#   - logs to DIR/dovecot.log;
#   - reads its accounts from DIR/users, one "NAME:{PLAIN}PASSWORD::::::"
#     per line (Dovecot's passwd-file format with the uid, gid, home...
#     fields left empty: this script supplies them). Each user's mail is a Maildir, DIR/mail/NAME/Maildir (home
#     DIR/mail/NAME).
#
# If DIR/users does not exist it is created with one account, demo/demo,
# and three small messages (CRLF line ends, subjects "moat demo 1..3") are
# delivered to DIR/mail/demo/Maildir/new. An existing DIR/users is used as
# it is and no mail is delivered: the caller may put its own accounts there
# and its own messages in DIR/mail/NAME/Maildir/new before starting this
# script. Running the script again on the same DIR reuses the mail.
#
# If DIR/extra.conf exists, the generated configuration includes it last,
# so its settings override the ones above (the integration tests use it to
# turn off Dovecot's own failed-login delays, for example).
#
# As root: Dovecot's own "dovecot" and "dovenull" system users run its
# internal and login processes, and mail is accessed as nobody:nogroup
# (DIR/mail is chowned to them). DIR and its parents must then be
# searchable by others (DIR itself is made so here). As any other user:
# everything runs as that user.
set -eu

if [ $# -ne 3 ]; then
	echo "usage: $0 DIR IMAP_PORT POP3_PORT" >&2
	exit 2
fi
for p in "$2" "$3"; do
	case $p in
	''|*[!0-9]*) echo "dovecot.sh: bad port '$p'" >&2; exit 2 ;;
	esac
done
imap_port=$2
pop3_port=$3

mkdir -p "$1"
dir=$(cd "$1" && pwd -P)
case $dir in
*[!A-Za-z0-9/._+-]*)
	# Keeps the generated configuration free of quoting problems.
	echo "dovecot.sh: DIR must not contain spaces or special characters: $dir" >&2
	exit 2 ;;
esac

command -v dovecot >/dev/null 2>&1 || {
	echo "dovecot.sh: dovecot not found (Debian: apt-get install dovecot-imapd dovecot-pop3d)" >&2
	exit 1
}

# Who runs what.
if [ "$(id -u)" = 0 ]; then
	login_user=dovenull
	internal_user=dovecot
	internal_group=dovecot
	mail_user=nobody
	mail_group=nogroup
	for u in $login_user $internal_user $mail_user; do
		id -u "$u" >/dev/null 2>&1 || {
			echo "dovecot.sh: system user '$u' is missing (is dovecot-core installed?)" >&2
			exit 1
		}
	done
	getent group $mail_group >/dev/null || mail_group=$(id -gn $mail_user)
	rootless=
else
	login_user=$(id -un)
	internal_user=$login_user
	internal_group=$(id -gn)
	mail_user=$login_user
	mail_group=$internal_group
	rootless=1
fi
mail_uid=$(id -u "$mail_user")
mail_gid=$(getent group "$mail_group" | cut -d: -f3)

mkdir -p "$dir/run" "$dir/state" "$dir/mail"

# One Maildir message: deliver USER FILE-NAME < content. Written into tmp/
# and renamed into new/, as Maildir wants.
deliver() {
	md=$dir/mail/$1/Maildir
	mkdir -p "$md/tmp" "$md/new" "$md/cur"
	cat > "$md/tmp/$2"
	mv "$md/tmp/$2" "$md/new/$2"
}

if [ ! -e "$dir/users" ]; then
	printf 'demo:{PLAIN}demo::::::\n' > "$dir/users.tmp"
	mv "$dir/users.tmp" "$dir/users"
	for n in 1 2 3; do
		# Maildir names sort by their leading timestamp, which is also the
		# order Dovecot gives them UIDs: message n gets UID n.
		{
			printf 'From: moat demo <demo@localhost>\r\n'
			printf 'To: demo <demo@localhost>\r\n'
			printf 'Subject: moat demo %s\r\n' "$n"
			printf 'Date: Mon, 01 Jan 2024 00:00:0%s +0000\r\n' "$n"
			printf 'Message-ID: <demo-%s@localhost>\r\n' "$n"
			printf 'MIME-Version: 1.0\r\n'
			printf 'Content-Type: text/plain; charset=us-ascii\r\n'
			printf '\r\n'
			printf 'This is demo message number %s, served by Dovecot\r\n' "$n"
			printf 'through moat.\r\n'
		} | deliver demo "100000000$n.M${n}P1.moat"
	done
fi

# Permissions: the mail processes own the mail; the auth process (internal
# user) reads the users file.
if [ -z "$rootless" ]; then
	chmod 755 "$dir"
	chown -R "$mail_user:$mail_group" "$dir/mail"
	chown "root:$internal_group" "$dir/users"
	chmod 640 "$dir/users"
	if command -v setpriv >/dev/null 2>&1 &&
	   ! setpriv --reuid="$mail_uid" --regid="$mail_gid" --clear-groups \
		test -w "$dir/mail" 2>/dev/null; then
		echo "dovecot.sh: $mail_user cannot reach $dir/mail; make $dir's parents searchable (chmod o+x)" >&2
		exit 1
	fi
else
	chmod 600 "$dir/users"
fi

# Services that would chroot or switch users need root; rootless, they run
# where they are as this user.
if [ -n "$rootless" ]; then
	rootless_services="
service anvil {
  chroot =
}
service imap-login {
  chroot =
}
service pop3-login {
  chroot =
}
service auth-worker {
  user = \$default_internal_user
}
service log {
  user = \$default_internal_user
}
service config {
  user = \$default_internal_user
}
service doveadm {
  user = \$default_internal_user
}
service imap-urlauth-login {
  chroot =
}
service director {
  chroot =
}
service aggregator {
  chroot =
}
"
else
	rootless_services=
fi

cat > "$dir/dovecot.conf.tmp" <<CONF
# Written by scripts/dovecot.sh; rewritten on every start.
protocols = imap pop3
listen = 127.0.0.1
base_dir = $dir/run
state_dir = $dir/state
instance_name = moat-dovecot
log_path = $dir/dovecot.log
info_log_path = $dir/dovecot.log
auth_verbose = yes
shutdown_clients = yes

default_login_user = $login_user
default_internal_user = $internal_user
default_internal_group = $internal_group
first_valid_uid = $mail_uid
last_valid_uid = $mail_uid
first_valid_gid = $mail_gid
last_valid_gid = $mail_gid

ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login

passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $dir/users
}
userdb {
  driver = passwd-file
  args = username_format=%u $dir/users
  default_fields = uid=$mail_uid gid=$mail_gid home=$dir/mail/%u
}

mail_location = maildir:~/Maildir
# The tests log in as one user from one address (moat's) many times at once.
mail_max_userip_connections = 1000
default_process_limit = 1000
default_client_limit = 4000
pop3_uidl_format = %08Xu%08Xv

service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $imap_port
  }
  inet_listener imaps {
    port = 0
  }
  # One login process serves many connections (faster to start many).
  service_count = 0
  process_min_avail = 1
}
service pop3-login {
  inet_listener pop3 {
    address = 127.0.0.1
    port = $pop3_port
  }
  inet_listener pop3s {
    port = 0
  }
  service_count = 0
  process_min_avail = 1
}
service submission-login {
  inet_listener submission {
    port = 0
  }
}
service lmtp {
  unix_listener lmtp {
    mode = 0600
  }
}
$rootless_services
CONF
if [ -e "$dir/extra.conf" ]; then
	printf '!include %s\n' "$dir/extra.conf" >> "$dir/dovecot.conf.tmp"
fi
mv "$dir/dovecot.conf.tmp" "$dir/dovecot.conf"

exec dovecot -F -c "$dir/dovecot.conf"
