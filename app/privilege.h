/*
 * app/privilege: least privilege for the live capture agent
 * (docs/capture.md, "Running with least privilege") — giving up root or
 * capabilities once the interface is open, as `tcpdump -Z` does, and
 * checking that the database's directory belongs to no one else.
 */
#ifndef REPRO_APP_PRIVILEGE_H
#define REPRO_APP_PRIVILEGE_H

#include "repro/core.h"

#include <stdio.h>

/*
 * Gives up what capture no longer needs once its interface is open (call
 * it then, before opening the database, as tcpdump -Z opens its output
 * files only afterwards).
 *
 * Running as root with user set: looks user up (getpwnam_r), then
 * initgroups(), setgid() and setuid() to it, and checks that it worked:
 * real and effective ids are the user's, no capability is left and
 * setuid(0) fails. glibc applies these to every thread of the process.
 *
 * Running as any other user (for example with only CAP_NET_RAW granted by
 * setcap or systemd's AmbientCapabilities): no user switch is needed, so
 * user must be NULL or name the user the process already runs as; every
 * capability (effective, permitted, inheritable, ambient) is dropped.
 * Capabilities belong to each thread, so this refuses (REPRO_E_INVAL) to
 * run while other threads exist and capabilities are held: call it
 * before starting any thread.
 *
 * Running as root with user NULL: nothing changes (the caller may warn).
 *
 * user is borrowed for the call. Returns REPRO_OK; REPRO_E_NOTFOUND when
 * there is no such user; REPRO_E_INVAL for a user with uid 0, for a user
 * other than the current one without root ("cannot switch to user 'x': not
 * running as root ..."), or for the thread case above; REPRO_E_IO when a
 * call fails (initgroups, setgid, setuid, capset: err names it and keeps
 * errno) or root could be regained afterwards. After a failure the process
 * may have given up part of its privileges: treat it as fatal. Not
 * thread-safe (it changes the whole process).
 */
int repro_app_drop_privileges(const char *user, struct repro_error *err);

/*
 * Checks the place of a capture database before the live agent writes it:
 * captured traffic may hold secrets, and whoever can write the database's
 * directory can plant its -wal and -shm files (the sticky bit does not stop
 * them from creating new files there) and so forge or read what is stored.
 *
 * Refuses (REPRO_E_INVAL, the message says what to run: "chmod 700 DIR")
 * a directory that group or others may write, or that is owned by a user
 * other than the effective user and root, and an existing database file
 * that group or others may write. Warns on log (when not NULL) when the
 * directory or the database file is readable by others. A relative db is
 * resolved against the working directory and messages name the absolute
 * directory; a database that does not exist yet is checked through its
 * directory only; when db is a symbolic link, the directory of the file it
 * points to is checked too (SQLite puts the -wal and -shm files there).
 * Call it as the user that will write the database (after
 * repro_app_drop_privileges). db is borrowed for the call.
 *
 * Returns REPRO_OK (warnings included); REPRO_E_INVAL as above;
 * REPRO_E_NOTFOUND when the directory does not exist; REPRO_E_IO when it
 * cannot be examined. Thread-safe.
 */
int repro_app_check_db_path(const char *db, FILE *log, struct repro_error *err);

/* The directory part of path into out: "." without a slash, "/" for
 * "/x" (the database's directory: its checks, the live agent's spool). */
void repro_app_dir_of(const char *path, char *out, size_t out_len);

#endif
