// See gloo/context.h: the declarations ProcessGroupGloo.hpp needs.
#pragma once
#include <gloo/context.h>
