"""One switch for the compiled kernels of every module.

numba is a core dependency. ``DEPTHCLOUD_NO_NUMBA=1`` in the environment, or an LLVM that cannot
load, makes every module take its numpy path instead; the tests check both paths give the same
results. Modules import ``HAVE_NUMBA`` from here and ``numba`` itself only when it is true.
"""

from __future__ import annotations

import os

try:
    if os.environ.get("DEPTHCLOUD_NO_NUMBA"):
        raise ImportError("disabled by DEPTHCLOUD_NO_NUMBA")
    import numba  # noqa: F401  (imported to learn whether it loads)

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised by the DEPTHCLOUD_NO_NUMBA tests
    HAVE_NUMBA = False

__all__ = ["HAVE_NUMBA"]

if HAVE_NUMBA:
    # Compaction kernels write each kept point at a cursor that only kept pixels advance. Three
    # scalar stores per point cost more than the rest of the work on CPUs without compressing
    # stores (AVX-512), so a point goes out as one 4-lane store whose fourth lane spills garbage into
    # the next point's first slot; the next kept point overwrites it. Callers must leave at least one
    # slot after the write that belongs to them (see ``spill_safe_rows``). Plain LLVM vector IR, so
    # it compiles for every target, numba's portable ``generic`` one included.
    from llvmlite import ir as _ir
    from numba import njit as _njit
    from numba.core import types as _types
    from numba.extending import intrinsic as _intrinsic

    def _store4(context, builder, signature, args, lane):  # type: ignore[no-untyped-def]
        arr = context.make_array(signature.args[0])(context, builder, args[0])
        k = context.cast(builder, args[1], signature.args[1], _types.int64)
        vec_t = _ir.VectorType(lane, 4)
        vec = _ir.Constant(vec_t, _ir.Undefined)
        for i in range(3):
            val = context.cast(builder, args[2 + i], signature.args[2 + i], signature.args[0].dtype)
            vec = builder.insert_element(vec, val, _ir.Constant(_ir.IntType(32), i))
        builder.store(vec, builder.bitcast(builder.gep(arr.data, [k]), vec_t.as_pointer()), align=1)
        return context.get_dummy_value()

    @_intrinsic
    def store3_spill(typingctx, flat, k, a, b, c):  # type: ignore[no-untyped-def]
        """flat[k:k+3] = a, b, c in one 4-element store; flat[k+3] receives garbage.

        flat: contiguous 1-D float32 or uint8 array; k: element index.
        """
        lane = _ir.FloatType() if flat.dtype == _types.float32 else _ir.IntType(8)
        return _types.void(flat, k, a, b, c), lambda ctx, bld, sig, args: _store4(ctx, bld, sig, args, lane)

    @_njit(cache=True, nogil=True)
    def spill_safe_rows(offsets, r0, r1):  # type: ignore[no-untyped-def]
        """First row of [r0, r1) from which spilling stores are no longer safe.

        offsets: (H + 1,) start of each row's points. Rows before the returned one may spill: the
        chunk's last row holding two or more points comes later, so one spilled slot never leaves the
        chunk. From the returned row on, the caller stores its last point exactly.
        """
        for r in range(r1 - 1, r0 - 1, -1):
            if offsets[r + 1] - offsets[r] >= 2:
                return r
        return r0

    __all__ += ["spill_safe_rows", "store3_spill"]
