/* data_dir.c: folders inside data_directory where an unprivileged daemon
 * keeps state of its own. data_directory belongs to mail_owner: root only
 * takes its descriptor (without following a link) before the privilege
 * drop; the folder inside is made and opened afterwards, as the account
 * that keeps the state, and used only when it is that account's. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data_dir.h"
#include "log.h"

#define DIR_FLAGS (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)

const char *data_dir_folder_name(enum param_id param)
{
    const char *name = cfg_str(param);
    if (!*name || strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        msg_fatal("%s = %s: expected the name of a directory inside data_directory (main.cf)",
                  param_table()[param].name, name);
    return name;
}

int data_dir_open(const char *what, const char *consequence)
{
    int fd = open(cfg_str(P_data_directory), DIR_FLAGS);
    if (fd < 0)
        msg_warn("%s: cannot open data_directory %s: %s; %s", what, cfg_str(P_data_directory),
                 strerror(errno), consequence);
    return fd;
}

int data_dir_folder(int *data_fd, const char *name, const char *what, const char *consequence)
{
    const char *data = cfg_str(P_data_directory);
    if (*data_fd < 0)
        return -1;
    if (mkdirat(*data_fd, name, 0700) < 0 && errno != EEXIST)
        msg_warn("%s: cannot create %s/%s: %s", what, data, name, strerror(errno));
    int fd = openat(*data_fd, name, DIR_FLAGS);
    struct stat st;
    if (fd >= 0 && (fstat(fd, &st) < 0 || st.st_uid != geteuid())) {
        msg_warn("%s: %s/%s does not belong to this account; %s", what, data, name, consequence);
        close(fd);
        fd = -1;
    } else if (fd < 0) {
        msg_warn("%s: cannot open %s/%s: %s; %s", what, data, name, strerror(errno), consequence);
    }
    close(*data_fd);
    *data_fd = -1;
    return fd;
}

int data_dir_folder_read(const char *name)
{
    int dfd = open(cfg_str(P_data_directory), DIR_FLAGS);
    if (dfd < 0)
        return -1;
    int fd = openat(dfd, name, DIR_FLAGS);
    int saved = errno;
    close(dfd);
    errno = saved;
    return fd;
}
