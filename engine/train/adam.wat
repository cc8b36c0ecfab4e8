;; The Adam update of optim.ts as WebAssembly SIMD (2 lanes of f64): the same IEEE operations in the
;; same order as the JS loop (float32 values widened to f64 exactly, every product and sum in f64,
;; m, v and p rounded to float32 to nearest on store), so the result is bit-identical to it, 2-4x
;; faster. Compiled by scripts/build-wasm.mjs into adam-wasm.ts; test/unit/adam-wasm.test.ts checks
;; both the bytes and the bits.
;;
;;   g' = g + l2 p;  m = b1 m + (1 - b1) g';  v = b2 v + ((1 - b2) g') g'
;;   p  = p shrink - ((lr m) c1) / (sqrt(v c2) + eps)
;;
;; with the gradient first scaled by s (clipping: g = f32(g s), as the JS loop stores it; s = 1 leaves
;; g unchanged).
;; adam(p, g, m, v, n, ..., s): p, g, m, v are byte offsets of n float32 values in the imported
;; memory; n is even (the caller does an odd last value in JS).
;; sumsq(g, n, acc): acc + sum of g[i]^2 in f64, one value after the other (the JS loop's order, so
;; the same norm to the bit).
(module
  (import "env" "memory" (memory 1))
  (func (export "adam") (param $p i32) (param $g i32) (param $m i32) (param $v i32) (param $n i32)
        (param $lr f64) (param $c1 f64) (param $c2 f64) (param $b1 f64) (param $b2 f64) (param $eps f64) (param $l2 f64) (param $shrink f64) (param $s f64)
    (local $i i32) (local $end i32) (local $S v128)
    (local $B1 v128) (local $A1 v128) (local $B2 v128) (local $A2 v128) (local $LR v128) (local $C1 v128) (local $C2 v128)
    (local $EPS v128) (local $L2 v128) (local $SH v128)
    (local $pi v128) (local $gi v128) (local $mi v128) (local $vi v128)
    (local.set $B1 (f64x2.splat (local.get $b1)))
    (local.set $A1 (f64x2.splat (f64.sub (f64.const 1) (local.get $b1))))
    (local.set $B2 (f64x2.splat (local.get $b2)))
    (local.set $A2 (f64x2.splat (f64.sub (f64.const 1) (local.get $b2))))
    (local.set $LR (f64x2.splat (local.get $lr)))
    (local.set $C1 (f64x2.splat (local.get $c1)))
    (local.set $C2 (f64x2.splat (local.get $c2)))
    (local.set $EPS (f64x2.splat (local.get $eps)))
    (local.set $L2 (f64x2.splat (local.get $l2)))
    (local.set $SH (f64x2.splat (local.get $shrink)))
    (local.set $S (f64x2.splat (local.get $s)))
    (local.set $end (i32.shl (local.get $n) (i32.const 2)))
    (block $done
      (loop $loop
        (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
        (local.set $pi (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (local.get $p) (local.get $i)))))
        (local.set $gi (f64x2.add (f64x2.promote_low_f32x4 (f32x4.demote_f64x2_zero (f64x2.mul
                                    (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (local.get $g) (local.get $i)))) (local.get $S))))
                                  (f64x2.mul (local.get $L2) (local.get $pi))))
        (local.set $mi (f64x2.add (f64x2.mul (local.get $B1) (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (local.get $m) (local.get $i)))))
                                  (f64x2.mul (local.get $A1) (local.get $gi))))
        (local.set $vi (f64x2.add (f64x2.mul (local.get $B2) (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (local.get $v) (local.get $i)))))
                                  (f64x2.mul (f64x2.mul (local.get $A2) (local.get $gi)) (local.get $gi))))
        (v128.store64_lane 0 (i32.add (local.get $m) (local.get $i)) (f32x4.demote_f64x2_zero (local.get $mi)))
        (v128.store64_lane 0 (i32.add (local.get $v) (local.get $i)) (f32x4.demote_f64x2_zero (local.get $vi)))
        (v128.store64_lane 0 (i32.add (local.get $p) (local.get $i))
          (f32x4.demote_f64x2_zero
            (f64x2.sub (f64x2.mul (local.get $pi) (local.get $SH))
                       (f64x2.div (f64x2.mul (f64x2.mul (local.get $LR) (local.get $mi)) (local.get $C1))
                                  (f64x2.add (f64x2.sqrt (f64x2.mul (local.get $vi) (local.get $C2))) (local.get $EPS))))))
        (local.set $i (i32.add (local.get $i) (i32.const 8)))
        (br $loop))))
  (func (export "sumsq") (param $g i32) (param $n i32) (param $acc f64) (result f64)
    (local $i i32) (local $end i32) (local $x f64)
    (local.set $end (i32.shl (local.get $n) (i32.const 2)))
    (block $done
      (loop $loop
        (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
        (local.set $x (f64.promote_f32 (f32.load (i32.add (local.get $g) (local.get $i)))))
        (local.set $acc (f64.add (local.get $acc) (f64.mul (local.get $x) (local.get $x))))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br $loop)))
    (local.get $acc))
)
