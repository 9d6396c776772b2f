/* The C limit for bench/wordcount.py: count the maximal runs of [A-Za-z] in a file with
 * two threads, one line-aligned half each, each into its own open-addressing hash
 * table, merged at the end. Prints "word<TAB>count" lines, unordered.
 *
 *   cc -O2 -pthread -o wordcount-c bench/wordcount.c && ./wordcount-c FILE
 *
 * Built and run by bench/wordcount.py (contender "c-2thread"); not part of kubemr.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define THREADS 2

typedef struct {
    const char *word; /* points into the mapped file */
    uint32_t len;
    uint64_t count;
} entry;

typedef struct {
    entry *slots;
    size_t cap, used;
} table;

typedef struct {
    const char *start, *end;
    table counts;
} job;

static uint64_t hash(const char *s, uint32_t n) {
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (uint32_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

static void add(table *t, const char *w, uint32_t n, uint64_t c);

static void grow(table *t) {
    table bigger = {calloc(t->cap * 2, sizeof(entry)), t->cap * 2, 0};
    if (!bigger.slots) { perror("calloc"); exit(1); }
    for (size_t i = 0; i < t->cap; i++)
        if (t->slots[i].word) add(&bigger, t->slots[i].word, t->slots[i].len, t->slots[i].count);
    free(t->slots);
    *t = bigger;
}

static void add(table *t, const char *w, uint32_t n, uint64_t c) {
    if ((t->used + 1) * 2 > t->cap) grow(t);
    size_t i = hash(w, n) & (t->cap - 1);
    for (;;) {
        entry *e = &t->slots[i];
        if (!e->word) { e->word = w; e->len = n; e->count = c; t->used++; return; }
        if (e->len == n && memcmp(e->word, w, n) == 0) { e->count += c; return; }
        i = (i + 1) & (t->cap - 1);
    }
}

static int letter(unsigned char c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; }

static void *count(void *arg) {
    job *j = arg;
    const char *p = j->start;
    while (p < j->end) {
        while (p < j->end && !letter(*p)) p++;
        const char *w = p;
        while (p < j->end && letter(*p)) p++;
        if (p > w) add(&j->counts, w, (uint32_t)(p - w), 1);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: %s FILE\n", argv[0]); return 2; }
    int fd = open(argv[1], O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) { perror(argv[1]); return 1; }
    size_t size = (size_t)st.st_size;
    const char *data = size ? mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0) : "";
    if (data == MAP_FAILED) { perror("mmap"); return 1; }
    job jobs[THREADS];
    pthread_t threads[THREADS];
    const char *start = data;
    for (int t = 0; t < THREADS; t++) {
        const char *end = t == THREADS - 1 ? data + size : data + size * (t + 1) / THREADS;
        while (end < data + size && end > start && end[-1] != '\n') end++; /* whole lines */
        if (end < start) end = start;
        jobs[t] = (job){start, end, {calloc(1 << 16, sizeof(entry)), 1 << 16, 0}};
        start = end;
        if (pthread_create(&threads[t], NULL, count, &jobs[t])) { perror("pthread"); return 1; }
    }
    for (int t = 0; t < THREADS; t++) pthread_join(threads[t], NULL);
    for (int t = 1; t < THREADS; t++)
        for (size_t i = 0; i < jobs[t].counts.cap; i++) {
            entry *e = &jobs[t].counts.slots[i];
            if (e->word) add(&jobs[0].counts, e->word, e->len, e->count);
        }
    for (size_t i = 0; i < jobs[0].counts.cap; i++) {
        entry *e = &jobs[0].counts.slots[i];
        if (e->word) printf("%.*s\t%llu\n", (int)e->len, e->word, (unsigned long long)e->count);
    }
    return 0;
}
