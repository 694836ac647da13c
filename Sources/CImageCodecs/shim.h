// CImageCodecs: libpng and libjpeg(-turbo), with getters for the macros Swift cannot import.
// Used by the Data target's JPEG/PNG decoders and encoders.
#pragma once
#include <stdio.h>
#include <stddef.h>
#include <png.h>
#include <jpeglib.h>

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
