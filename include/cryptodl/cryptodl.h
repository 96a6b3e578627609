/*
 * cryptodl.h: the umbrella header. Include this one.
 */
#ifndef CRYPTODL_H
#define CRYPTODL_H

#include "cryptodl/common.h"
#include "cryptodl/version.h"
#include "cryptodl/ckks.h"
#include "cryptodl/nn.h"
#include "cryptodl/data.h"
#include "cryptodl/approx.h"
#include "cryptodl/he.h"
#include "cryptodl/client.h"
#include "cryptodl/serve.h"
#include "cryptodl/learn.h"
#include "cryptodl/bootstrap.h"

#endif
