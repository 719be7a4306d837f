/*
 * Replays fuzz inputs without libFuzzer: every regular file in the
 * directories (and files) named on the command line goes through
 * LLVMFuzzerTestOneInput once. A missing directory (the shared corpus
 * outside its checkout) does not stop the others, but the run then exits 77,
 * which ctest reports as skipped: part of the corpus was not replayed. Under
 * ASan/UBSan any memory error fails the test; the target itself checks
 * invariants and aborts on violation.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf;
    long n;

    if (f == NULL)
        return 0;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (n < 0 || n > 64L * 1024 * 1024) {
        fclose(f);
        return 0;
    }
    buf = malloc((size_t)n + 1);
    if (buf == NULL || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "cannot read '%s'\n", path);
        free(buf);
        fclose(f);
        return -1;
    }
    fclose(f);
    LLVMFuzzerTestOneInput(buf, (size_t)n);
    free(buf);
    return 1;
}

int main(int argc, char **argv)
{
    int i, total = 0, missing = 0;

    for (i = 1; i < argc; i++) {
        struct stat st;
        DIR *d;
        struct dirent *e;

        if (stat(argv[i], &st) != 0) {
            printf("SKIPPED part: no inputs at '%s'\n", argv[i]);
            missing++;
            continue;
        }
        if (S_ISREG(st.st_mode)) {
            total += run_file(argv[i]) > 0;
            continue;
        }
        d = opendir(argv[i]);
        if (d == NULL)
            continue;
        while ((e = readdir(d)) != NULL) {
            char path[4096];
            if (e->d_name[0] == '.')
                continue;
            snprintf(path, sizeof path, "%s/%s", argv[i], e->d_name);
            if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
                int r = run_file(path);
                if (r < 0)
                    return 1;
                total += r;
            }
        }
        closedir(d);
    }
    printf("replayed %d inputs\n", total);
    if (total == 0)
        return 1;
    return missing ? 77 : 0;
}
