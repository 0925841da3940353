/* The C interface of the SentencePiece module. SentencePiece lives in a
 * module of its own, loaded at run time with its symbols kept private,
 * because the system libsentencepiece carries a protobuf that clashes with
 * the one libtorch loads (linking both into one program crashes it at
 * start-up). Only plain C types cross this boundary. */
#ifndef PERSONAPLEX_SPM_ABI_H
#define PERSONAPLEX_SPM_ABI_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PERSONAPLEX_SPM_ABI_VERSION 1

typedef struct personaplex_spm personaplex_spm;

/* Interface version of the module, PERSONAPLEX_SPM_ABI_VERSION. */
int personaplex_spm_abi_version(void);
/* Loads a model file; NULL on failure with a message in `error`. */
personaplex_spm *personaplex_spm_open(const char *model_path, char *error, size_t error_size);
void personaplex_spm_close(personaplex_spm *spm);
int personaplex_spm_vocab_size(const personaplex_spm *spm);
/* Encodes UTF-8 text (no BOS/EOS). Returns the number of ids, which may
 * exceed `capacity` (then call again with room), or -1 on failure. */
long personaplex_spm_encode(const personaplex_spm *spm, const char *text, size_t text_size, int *ids,
                            size_t capacity);
/* The piece of `id` into `buffer` (not NUL-terminated). Returns its byte
 * length, which may exceed `capacity`, or -1 for an id outside the vocabulary. */
long personaplex_spm_id_to_piece(const personaplex_spm *spm, int id, char *buffer, size_t capacity);

#ifdef __cplusplus
}
#endif

#endif
