#include <stddef.h>
#include <stdint.h>
struct strbuf;
int kevent_json(const void *data, size_t len, struct strbuf *out);
int kevent_text(const void *data, size_t len, struct strbuf *out);
int kevent_pid_comm(const void *data, size_t len, uint32_t *pid, char comm[16]);
