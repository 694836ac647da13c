// CImageCodecs: libpng and libjpeg(-turbo), with getters for the macros Swift cannot import.
// Used by the Data target's JPEG/PNG decoders and encoders (Sources/Data/JPEG.swift, PNG.swift).
#pragma once
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <png.h>
#include <jpeglib.h>
#include <jerror.h>

static inline const char *mp_png_libpng_ver_string(void) { return PNG_LIBPNG_VER_STRING; }
static inline int mp_png_color_type_gray(void) { return PNG_COLOR_TYPE_GRAY; }
static inline int mp_png_color_type_gray_alpha(void) { return PNG_COLOR_TYPE_GRAY_ALPHA; }
static inline int mp_png_color_type_palette(void) { return PNG_COLOR_TYPE_PALETTE; }
static inline int mp_png_color_type_rgb(void) { return PNG_COLOR_TYPE_RGB; }
static inline int mp_png_color_type_rgba(void) { return PNG_COLOR_TYPE_RGB_ALPHA; }
static inline int mp_png_interlace_none(void) { return PNG_INTERLACE_NONE; }
static inline int mp_png_compression_type_default(void) { return PNG_COMPRESSION_TYPE_DEFAULT; }
static inline int mp_png_filter_type_default(void) { return PNG_FILTER_TYPE_DEFAULT; }
static inline int mp_png_image_version(void) { return PNG_IMAGE_VERSION; }
static inline int mp_jpeg_lib_version(void) { return JPEG_LIB_VERSION; }
static inline int mp_jpeg_dct_islow(void) { return JDCT_ISLOW; }

// ---------------------------------------------------------------------------------------------------------
// libpng simplified API (png_image_*): format macros and the output size bound. Used by the PNG encoder.
// ---------------------------------------------------------------------------------------------------------
static inline unsigned mp_png_format_gray(void) { return PNG_FORMAT_GRAY; }
static inline unsigned mp_png_format_ga(void) { return PNG_FORMAT_GA; }
static inline unsigned mp_png_format_rgb(void) { return PNG_FORMAT_RGB; }
static inline unsigned mp_png_format_rgba(void) { return PNG_FORMAT_RGBA; }
static inline unsigned mp_png_format_linear_y(void) { return PNG_FORMAT_LINEAR_Y; }
static inline unsigned mp_png_format_linear_rgb(void) { return PNG_FORMAT_LINEAR_RGB; }
static inline unsigned mp_png_format_rgb_colormap(void) { return PNG_FORMAT_RGB_COLORMAP; }
static inline unsigned mp_png_format_rgba_colormap(void) { return PNG_FORMAT_RGBA_COLORMAP; }
static inline unsigned mp_png_image_flag_fast(void) { return PNG_IMAGE_FLAG_FAST; }
static inline int mp_png_image_warning(void) { return PNG_IMAGE_WARNING; }
static inline int mp_png_image_error(void) { return PNG_IMAGE_ERROR; }
/// An upper bound on the bytes `png_image_write_to_memory` needs for `image` (PNG_IMAGE_PNG_SIZE_MAX).
static inline size_t mp_png_image_png_size_max(const png_image *image) { return PNG_IMAGE_PNG_SIZE_MAX(*image); }

// ---------------------------------------------------------------------------------------------------------
// libpng low-level reader. libpng reports errors by calling an error function that must not return; Swift
// cannot longjmp, so every step that can fail runs inside a C function here that owns the setjmp and returns
// 0 on success, -1 on failure with libpng's message in `message`. The low-level API (not png_image_*) is used
// for reading because the simplified reader gamma-corrects, composites alpha over a background and may
// rebuild colormaps, whereas label PNGs must come back exactly as stored (PIL semantics).
// ---------------------------------------------------------------------------------------------------------
typedef struct mp_png_decoder {
    png_structp png;
    png_infop info;
    const unsigned char *data;
    size_t size, pos;
    png_bytep *rows;          // row pointers for png_read_image; freed in destroy
    unsigned char *scratch;   // 16-bit gray rows; freed in destroy
    const char *call;         // the libpng call that failed (or is running)
    char message[200];
    jmp_buf jump;
} mp_png_decoder;

static inline void mp_png_on_error(png_structp png, png_const_charp msg) {
    mp_png_decoder *d = (mp_png_decoder *)png_get_error_ptr(png);
    snprintf(d->message, sizeof d->message, "%s", msg ? msg : "unknown libpng error");
    longjmp(d->jump, 1);
}
static inline void mp_png_on_warning(png_structp png, png_const_charp msg) { (void)png; (void)msg; }
static inline void mp_png_read_memory(png_structp png, png_bytep out, size_t n) {
    mp_png_decoder *d = (mp_png_decoder *)png_get_io_ptr(png);
    if (n > d->size - d->pos) png_error(png, "Read Error: unexpected end of data (truncated file)");
    memcpy(out, d->data + d->pos, n);
    d->pos += n;
}

/// Allocates a decoder with its png_struct and png_info. NULL only if calloc fails; otherwise check
/// `d->png && d->info`, and read `message` when they are NULL.
static inline mp_png_decoder *mp_png_decoder_create(void) {
    mp_png_decoder *d = (mp_png_decoder *)calloc(1, sizeof(mp_png_decoder));
    if (!d) return NULL;
    if (setjmp(d->jump)) return d;
    d->call = "png_create_read_struct";
    d->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, d, mp_png_on_error, mp_png_on_warning);
    if (!d->png) { snprintf(d->message, sizeof d->message, "png_create_read_struct failed"); return d; }
    d->call = "png_create_info_struct";
    d->info = png_create_info_struct(d->png);
    if (!d->info) snprintf(d->message, sizeof d->message, "png_create_info_struct failed");
    return d;
}

static inline void mp_png_decoder_destroy(mp_png_decoder *d) {
    if (!d) return;
    if (d->png) png_destroy_read_struct(&d->png, d->info ? &d->info : NULL, NULL);
    free(d->rows);
    free(d->scratch);
    free(d);
}

/// Checks the signature and runs png_read_info on `data` (which must outlive the decoder's use).
static inline int mp_png_decoder_read_info(mp_png_decoder *d, const unsigned char *data, size_t size) {
    if (setjmp(d->jump)) return -1;
    d->call = "png_sig_cmp";
    if (size < 8 || png_sig_cmp(data, 0, 8) != 0) {
        snprintf(d->message, sizeof d->message, "not a PNG file (bad signature)");
        return -1;
    }
    d->data = data; d->size = size; d->pos = 0;
    png_set_read_fn(d->png, d, mp_png_read_memory);
    d->call = "png_read_info";
    png_read_info(d->png, d->info);
    return 0;
}

static inline unsigned mp_png_decoder_width(const mp_png_decoder *d) { return png_get_image_width(d->png, d->info); }
static inline unsigned mp_png_decoder_height(const mp_png_decoder *d) { return png_get_image_height(d->png, d->info); }
static inline int mp_png_decoder_bit_depth(const mp_png_decoder *d) { return png_get_bit_depth(d->png, d->info); }
static inline int mp_png_decoder_color_type(const mp_png_decoder *d) { return png_get_color_type(d->png, d->info); }
static inline int mp_png_decoder_has_trns(const mp_png_decoder *d) {
    return png_get_valid(d->png, d->info, PNG_INFO_tRNS) != 0;
}
/// The PLTE entries as RGB triples (up to 256) and their tRNS alphas; returns the number of entries.
/// `rgb` holds 768 bytes, `alpha` 256 (entries without a tRNS value get 255).
static inline int mp_png_decoder_palette(mp_png_decoder *d, unsigned char *rgb, unsigned char *alpha) {
    if (setjmp(d->jump)) return -1;
    d->call = "png_get_PLTE";
    png_colorp plte = NULL; int n = 0;
    if (png_get_PLTE(d->png, d->info, &plte, &n) == 0) n = 0;
    if (n > 256) n = 256;
    for (int i = 0; i < n; i++) { rgb[3*i] = plte[i].red; rgb[3*i+1] = plte[i].green; rgb[3*i+2] = plte[i].blue; }
    for (int i = 0; i < 256; i++) alpha[i] = 255;
    png_bytep trans = NULL; int ntrans = 0; png_color_16p tc = NULL;
    if (png_get_tRNS(d->png, d->info, &trans, &ntrans, &tc) && trans)
        for (int i = 0; i < ntrans && i < 256; i++) alpha[i] = trans[i];
    return n;
}

enum { MP_PNG_NATURAL = 0, MP_PNG_RGB = 1, MP_PNG_RGBA = 2 };

/// Decodes the whole image into `out` (`height` rows of `width·channels` bytes, no padding).
/// target MP_PNG_NATURAL: the stored channels at 8 bits — gray 1, gray+alpha 2, palette 1 (the indices),
///   RGB 3, RGBA 4; bit depths 1/2/4 unpacked (gray scaled to 0..255 as PIL's "L;1/2/4", palette indices kept).
/// target MP_PNG_RGB / MP_PNG_RGBA: gray replicated, alpha dropped / added (255, or 0 where tRNS matches).
///   Palette files are not accepted here (the caller expands indices itself).
/// 16 bits: every channel keeps its high byte (PIL "RGB;16B", "LA;16B"), except single-channel gray, which is
/// clamped to 255 (PIL's "I;16" → "L"), so label values below 256 survive.
static inline int mp_png_decoder_decode(mp_png_decoder *d, unsigned char *out, size_t out_size,
                                        int target, int channels) {
    if (setjmp(d->jump)) return -1;
    d->call = "png_set_transforms";
    png_structp p = d->png; png_infop info = d->info;
    int ct = png_get_color_type(p, info), bd = png_get_bit_depth(p, info);
    int trns = png_get_valid(p, info, PNG_INFO_tRNS) != 0;
    png_uint_32 w = png_get_image_width(p, info), h = png_get_image_height(p, info);
    int gray16 = (ct == PNG_COLOR_TYPE_GRAY && bd == 16);
    if ((size_t)w * h * (size_t)channels != out_size) png_error(p, "output buffer size mismatch");
    if (ct == PNG_COLOR_TYPE_PALETTE) {
        if (target != MP_PNG_NATURAL) png_error(p, "palette PNG: expand indices after decoding");
        if (bd < 8) png_set_packing(p);
    } else if (ct == PNG_COLOR_TYPE_GRAY || ct == PNG_COLOR_TYPE_GRAY_ALPHA) {
        if (bd < 8) png_set_expand_gray_1_2_4_to_8(p);
        if (bd == 16 && !gray16) png_set_strip_16(p);
        if (!gray16 && target != MP_PNG_NATURAL) {
            png_set_gray_to_rgb(p);
            if (target == MP_PNG_RGB && ct == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_strip_alpha(p);
            if (target == MP_PNG_RGBA && ct == PNG_COLOR_TYPE_GRAY) {
                if (trns) png_set_tRNS_to_alpha(p); else png_set_add_alpha(p, 0xff, PNG_FILLER_AFTER);
            }
        }
    } else {
        if (bd == 16) png_set_strip_16(p);
        if (target == MP_PNG_RGB && ct == PNG_COLOR_TYPE_RGB_ALPHA) png_set_strip_alpha(p);
        if (target == MP_PNG_RGBA && ct == PNG_COLOR_TYPE_RGB) {
            if (trns) png_set_tRNS_to_alpha(p); else png_set_add_alpha(p, 0xff, PNG_FILLER_AFTER);
        }
    }
    (void)png_set_interlace_handling(p);
    d->call = "png_read_update_info";
    png_read_update_info(p, info);
    size_t rowbytes = png_get_rowbytes(p, info);
    size_t stride = (size_t)w * (size_t)channels;
    if (rowbytes != (gray16 ? (size_t)w * 2 : stride)) png_error(p, "unexpected row size after transforms");
    d->rows = (png_bytep *)malloc((h ? h : 1) * sizeof(png_bytep));
    if (!d->rows) png_error(p, "out of memory");
    unsigned char *base = out;
    if (gray16) {
        d->scratch = (unsigned char *)malloc(rowbytes * h + 1);
        if (!d->scratch) png_error(p, "out of memory");
        base = d->scratch;
    }
    for (png_uint_32 y = 0; y < h; y++) d->rows[y] = base + (size_t)y * rowbytes;
    d->call = "png_read_image";
    png_read_image(p, d->rows);
    if (gray16) {
        png_color_16p tc = NULL; int tgray = -1;
        if (trns && png_get_tRNS(p, info, NULL, NULL, &tc) && tc) tgray = tc->gray;
        size_t n = (size_t)w * h;
        for (size_t i = 0; i < n; i++) {
            unsigned v = ((unsigned)d->scratch[2*i] << 8) | d->scratch[2*i + 1];
            unsigned char g = v > 255 ? 255 : (unsigned char)v;
            unsigned char *o = out + i * (size_t)channels;
            if (channels == 1) { o[0] = g; }
            else if (channels == 3) { o[0] = o[1] = o[2] = g; }
            else { o[0] = o[1] = o[2] = g; o[3] = ((int)v == tgray) ? 0 : 255; }
        }
    }
    return 0;
}
/// Decodes a gray PNG (bit depth 1…16, no alpha) into `out` (`width·height` values exactly as stored; 8-bit and
/// lower depths as their sample values, 16-bit big-endian samples as numbers): Cityscapes' 16-bit `instanceIds`.
static inline int mp_png_decoder_decode_gray16(mp_png_decoder *d, unsigned short *out, size_t count) {
    if (setjmp(d->jump)) return -1;
    d->call = "png_set_transforms";
    png_structp p = d->png; png_infop info = d->info;
    int ct = png_get_color_type(p, info), bd = png_get_bit_depth(p, info);
    png_uint_32 w = png_get_image_width(p, info), h = png_get_image_height(p, info);
    if (ct != PNG_COLOR_TYPE_GRAY) png_error(p, "expected a single-channel gray PNG");
    if ((size_t)w * h != count) png_error(p, "output buffer size mismatch");
    if (bd < 8) png_set_packing(p);
    (void)png_set_interlace_handling(p);
    d->call = "png_read_update_info";
    png_read_update_info(p, info);
    size_t rowbytes = png_get_rowbytes(p, info);
    size_t bytes = bd == 16 ? 2 : 1;
    if (rowbytes != (size_t)w * bytes) png_error(p, "unexpected row size after transforms");
    d->rows = (png_bytep *)malloc((h ? h : 1) * sizeof(png_bytep));
    d->scratch = (unsigned char *)malloc(rowbytes * h + 1);
    if (!d->rows || !d->scratch) png_error(p, "out of memory");
    for (png_uint_32 y = 0; y < h; y++) d->rows[y] = d->scratch + (size_t)y * rowbytes;
    d->call = "png_read_image";
    png_read_image(p, d->rows);
    size_t n = (size_t)w * h;
    for (size_t i = 0; i < n; i++)
        out[i] = bytes == 2 ? (unsigned short)(((unsigned)d->scratch[2*i] << 8) | d->scratch[2*i + 1]) : d->scratch[i];
    return 0;
}
static inline const char *mp_png_decoder_message(const mp_png_decoder *d) { return d->message; }
static inline const char *mp_png_decoder_call(const mp_png_decoder *d) { return d->call ? d->call : "libpng"; }

// ---------------------------------------------------------------------------------------------------------
// libjpeg(-turbo). Its error manager calls error_exit, which must not return: the C functions below own the
// setjmp and return 0 / -1 with libjpeg's formatted message in `message`. The "Premature end of JPEG file"
// warning (JWRN_JPEG_EOF: libjpeg pads missing data with gray and carries on) is an error while scanlines
// are still owed, as PIL raises "image file is truncated"; other warnings are counted and ignored, as in PIL.
// Once every row is decoded, nothing that follows (missing EOI, damaged trailing markers) fails the decode.
// ---------------------------------------------------------------------------------------------------------
typedef struct mp_jpeg_error {
    struct jpeg_error_mgr mgr;   // first, so a j_common_ptr's err can be cast back
    int eof_is_error;
    int warnings;
    const char *call;            // the libjpeg call that failed (or is running)
    char message[JMSG_LENGTH_MAX];
    char first_warning[JMSG_LENGTH_MAX];
    jmp_buf jump;
} mp_jpeg_error;

static inline void mp_jpeg_on_error(j_common_ptr cinfo) {
    mp_jpeg_error *e = (mp_jpeg_error *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, e->message);
    longjmp(e->jump, 1);
}
static inline void mp_jpeg_on_message(j_common_ptr cinfo, int level) {
    if (level >= 0) return;   // trace messages
    mp_jpeg_error *e = (mp_jpeg_error *)cinfo->err;
    if (e->eof_is_error && cinfo->err->msg_code == JWRN_JPEG_EOF) {
        (*cinfo->err->format_message)(cinfo, e->message);
        longjmp(e->jump, 1);
    }
    if (e->warnings++ == 0) (*cinfo->err->format_message)(cinfo, e->first_warning);
    cinfo->err->num_warnings++;
}
static inline void mp_jpeg_error_init(mp_jpeg_error *e) {
    jpeg_std_error(&e->mgr);
    e->mgr.error_exit = mp_jpeg_on_error;
    e->mgr.emit_message = mp_jpeg_on_message;
}

typedef struct mp_jpeg_decoder {
    struct jpeg_decompress_struct cinfo;
    mp_jpeg_error err;
    int created;
} mp_jpeg_decoder;

/// Allocates a decompressor. NULL only if calloc fails; `created == 0` means jpeg_create_decompress failed
/// (see `err.message`).
static inline mp_jpeg_decoder *mp_jpeg_decoder_create(void) {
    mp_jpeg_decoder *d = (mp_jpeg_decoder *)calloc(1, sizeof(mp_jpeg_decoder));
    if (!d) return NULL;
    mp_jpeg_error_init(&d->err);
    d->cinfo.err = &d->err.mgr;
    if (setjmp(d->err.jump)) return d;
    d->err.call = "jpeg_create_decompress";
    jpeg_create_decompress(&d->cinfo);
    d->created = 1;
    return d;
}
static inline void mp_jpeg_decoder_destroy(mp_jpeg_decoder *d) {
    if (!d) return;
    if (d->created) jpeg_destroy_decompress(&d->cinfo);
    free(d);
}
/// jpeg_mem_src + jpeg_read_header(require_image = TRUE). `data` must outlive the decode.
static inline int mp_jpeg_decoder_read_header(mp_jpeg_decoder *d, const unsigned char *data, unsigned long size) {
    if (setjmp(d->err.jump)) return -1;
    d->err.eof_is_error = 1;
    d->err.call = "jpeg_mem_src";
    jpeg_mem_src(&d->cinfo, data, size);
    d->err.call = "jpeg_read_header";
    if (jpeg_read_header(&d->cinfo, TRUE) != JPEG_HEADER_OK) {
        snprintf(d->err.message, sizeof d->err.message, "JPEG datastream holds no image");
        return -1;
    }
    return 0;
}
static inline unsigned mp_jpeg_decoder_width(const mp_jpeg_decoder *d) { return d->cinfo.image_width; }
static inline unsigned mp_jpeg_decoder_height(const mp_jpeg_decoder *d) { return d->cinfo.image_height; }
static inline int mp_jpeg_decoder_components(const mp_jpeg_decoder *d) { return d->cinfo.num_components; }
static inline int mp_jpeg_decoder_color_space(const mp_jpeg_decoder *d) { return (int)d->cinfo.jpeg_color_space; }
static inline int mp_jpeg_decoder_is_cmyk(const mp_jpeg_decoder *d) {
    return d->cinfo.jpeg_color_space == JCS_CMYK || d->cinfo.jpeg_color_space == JCS_YCCK;
}
static inline int mp_jpeg_decoder_is_gray(const mp_jpeg_decoder *d) {
    return d->cinfo.jpeg_color_space == JCS_GRAYSCALE;
}
static inline int mp_jpeg_decoder_warnings(const mp_jpeg_decoder *d) { return d->err.warnings; }
static inline const char *mp_jpeg_decoder_first_warning(const mp_jpeg_decoder *d) { return d->err.first_warning; }
static inline const char *mp_jpeg_decoder_message(const mp_jpeg_decoder *d) { return d->err.message; }
static inline const char *mp_jpeg_decoder_call(const mp_jpeg_decoder *d) { return d->err.call ? d->err.call : "libjpeg"; }

/// Pillow's MULDIV255: a·b/255 rounded, exact for 0 ≤ a, b ≤ 255.
static inline unsigned mp_muldiv255(unsigned a, unsigned b) { unsigned t = a * b + 128; return ((t >> 8) + t) >> 8; }

/// jpeg_start_decompress + jpeg_read_scanlines + jpeg_finish_decompress straight into `out`
/// (`height` rows of `width·channels` bytes). channels 3: RGB (libjpeg converts YCbCr and replicates gray;
/// CMYK/YCCK come out of libjpeg as Adobe-inverted CMYK and are converted like Pillow: "CMYK;I" unpack, then
/// R = (255−C)(255−K)/255 via MULDIV255). channels 1: only for grayscale files (the stored luma).
/// Uses JDCT_ISLOW and fancy upsampling (libjpeg's and PIL's defaults).
static inline int mp_jpeg_decoder_decode(mp_jpeg_decoder *d, unsigned char *out, size_t out_size, int channels) {
    j_decompress_ptr c = &d->cinfo;
    if (setjmp(d->err.jump)) return -1;
    int cmyk = mp_jpeg_decoder_is_cmyk(d);
    if (channels == 1) {
        if (c->jpeg_color_space != JCS_GRAYSCALE) ERREXIT(c, JERR_CONVERSION_NOTIMPL);
        c->out_color_space = JCS_GRAYSCALE;
    } else if (channels == 3) {
        c->out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
    } else {
        ERREXIT(c, JERR_CONVERSION_NOTIMPL);
    }
    c->dct_method = JDCT_ISLOW;
    d->err.call = "jpeg_start_decompress";
    jpeg_start_decompress(c);
    size_t stride = (size_t)c->output_width * (size_t)channels;
    if (c->output_width != c->image_width || c->output_height != c->image_height ||
        c->output_components != (cmyk ? 4 : channels) || stride * c->output_height != out_size) {
        snprintf(d->err.message, sizeof d->err.message, "unexpected output geometry %ux%ux%d",
                 c->output_width, c->output_height, c->output_components);
        return -1;
    }
    JSAMPARRAY cmyk_rows = NULL;
    if (cmyk) cmyk_rows = (*c->mem->alloc_sarray)((j_common_ptr)c, JPOOL_IMAGE, c->output_width * 4, 1);
    d->err.call = "jpeg_read_scanlines";
    while (c->output_scanline < c->output_height) {
        unsigned char *dst = out + (size_t)c->output_scanline * stride;
        if (cmyk) {
            if (jpeg_read_scanlines(c, cmyk_rows, 1) != 1) ERREXIT(c, JERR_INPUT_EMPTY);
            const unsigned char *s = cmyk_rows[0];
            for (unsigned x = 0; x < c->output_width; x++, s += 4, dst += 3) {
                // s holds inverted CMYK (Adobe): Pillow's C = 255 − s[0], nk = 255 − K = s[3].
                unsigned nk = s[3];
                dst[0] = (unsigned char)(nk - mp_muldiv255(255u - s[0], nk));
                dst[1] = (unsigned char)(nk - mp_muldiv255(255u - s[1], nk));
                dst[2] = (unsigned char)(nk - mp_muldiv255(255u - s[2], nk));
            }
        } else {
            JSAMPROW rows[8];
            JDIMENSION want = c->output_height - c->output_scanline;
            if (want > 8) want = 8;
            for (JDIMENSION i = 0; i < want; i++) rows[i] = dst + (size_t)i * stride;
            if (jpeg_read_scanlines(c, rows, want) == 0) ERREXIT(c, JERR_INPUT_EMPTY);
        }
    }
    // All pixels are out. PIL stops here (it never calls jpeg_finish_decompress), so neither a missing EOI
    // marker nor damage after the last scan fails the decode; such an error only counts as a warning.
    d->err.eof_is_error = 0;
    d->err.call = "jpeg_finish_decompress";
    if (setjmp(d->err.jump)) { d->err.warnings++; return 0; }
    jpeg_finish_decompress(c);
    return 0;
}

typedef struct mp_jpeg_encoder {
    struct jpeg_compress_struct cinfo;
    mp_jpeg_error err;
    unsigned char *buffer;       // malloc'd by jpeg_mem_dest; freed in destroy
    unsigned long size;
    int created;
} mp_jpeg_encoder;

static inline mp_jpeg_encoder *mp_jpeg_encoder_create(void) {
    mp_jpeg_encoder *e = (mp_jpeg_encoder *)calloc(1, sizeof(mp_jpeg_encoder));
    if (!e) return NULL;
    mp_jpeg_error_init(&e->err);
    e->cinfo.err = &e->err.mgr;
    if (setjmp(e->err.jump)) return e;
    e->err.call = "jpeg_create_compress";
    jpeg_create_compress(&e->cinfo);
    e->created = 1;
    return e;
}
static inline void mp_jpeg_encoder_destroy(mp_jpeg_encoder *e) {
    if (!e) return;
    if (e->created) jpeg_destroy_compress(&e->cinfo);
    free(e->buffer);
    free(e);
}
static inline int mp_jcs_grayscale(void) { return JCS_GRAYSCALE; }
static inline int mp_jcs_rgb(void) { return JCS_RGB; }
static inline int mp_jcs_ycbcr(void) { return JCS_YCbCr; }
static inline int mp_jcs_cmyk(void) { return JCS_CMYK; }
static inline int mp_jcs_ycck(void) { return JCS_YCCK; }

/// Compresses `pixels` (`height` rows of `width·components` bytes) into memory (e->buffer, e->size).
/// in_space: JCS_GRAYSCALE (1), JCS_RGB (3) or JCS_CMYK (4, written as-is with an Adobe marker);
/// jpeg_space < 0 keeps libjpeg's default for in_space (YCbCr for RGB, CMYK for CMYK), or e.g. JCS_YCCK.
/// app1 (may be NULL): the payload of one APP1 marker written right after the JFIF/Adobe header.
static inline int mp_jpeg_encoder_encode(mp_jpeg_encoder *e, const unsigned char *pixels, unsigned width,
                                         unsigned height, int components, int in_space, int jpeg_space,
                                         int quality, const unsigned char *app1, unsigned app1_len) {
    j_compress_ptr c = &e->cinfo;
    if (setjmp(e->err.jump)) return -1;
    e->err.call = "jpeg_set_defaults";
    jpeg_mem_dest(c, &e->buffer, &e->size);
    c->image_width = width;
    c->image_height = height;
    c->input_components = components;
    c->in_color_space = (J_COLOR_SPACE)in_space;
    jpeg_set_defaults(c);
    if (jpeg_space >= 0) jpeg_set_colorspace(c, (J_COLOR_SPACE)jpeg_space);
    jpeg_set_quality(c, quality, TRUE);
    c->dct_method = JDCT_ISLOW;
    e->err.call = "jpeg_start_compress";
    jpeg_start_compress(c, TRUE);
    e->err.call = "jpeg_write_marker";
    if (app1 && app1_len) jpeg_write_marker(c, JPEG_APP0 + 1, app1, app1_len);
    e->err.call = "jpeg_write_scanlines";
    size_t stride = (size_t)width * (size_t)components;
    while (c->next_scanline < c->image_height) {
        JSAMPROW row = (JSAMPROW)(pixels + (size_t)c->next_scanline * stride);
        jpeg_write_scanlines(c, &row, 1);
    }
    e->err.call = "jpeg_finish_compress";
    jpeg_finish_compress(c);
    return 0;
}
static inline const unsigned char *mp_jpeg_encoder_bytes(const mp_jpeg_encoder *e) { return e->buffer; }
static inline unsigned long mp_jpeg_encoder_size(const mp_jpeg_encoder *e) { return e->size; }
static inline const char *mp_jpeg_encoder_message(const mp_jpeg_encoder *e) { return e->err.message; }
static inline const char *mp_jpeg_encoder_call(const mp_jpeg_encoder *e) { return e->err.call ? e->err.call : "libjpeg"; }
