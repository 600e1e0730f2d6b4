;; Page scan for `diff` (WebAssembly text): compares OLD's and NEW's pages in
;; place and hashes them with XXH64 (seed 0), one call per step instead of a
;; JavaScript loop over the pages. It imports the memory of the XBZRLE
;; kernel (lib/codec/wasm/kernel.wat), where `diff` reads the images, so
;; nothing is copied. Assembled into scan-wasm.ts by build-scan.mjs (in
;; this folder); test/delta-scan.test.ts checks that file is up to date.
;;
;; All pointers are byte offsets into the imported memory; lengths are page
;; sizes (multiples of 64).
(module
  (import "env" "memory" (memory 1 65536 shared))

  ;; 1 when the `n` bytes at `p` are all zero (n a multiple of 64).
  (func $is_zero (param $p i32) (param $n i32) (result i32)
    (local $e i32)
    (local.set $e (i32.add (local.get $p) (local.get $n)))
    (loop $l
      (if (v128.any_true
            (v128.or
              (v128.or (v128.load (local.get $p)) (v128.load offset=16 (local.get $p)))
              (v128.or (v128.load offset=32 (local.get $p)) (v128.load offset=48 (local.get $p)))))
        (then (return (i32.const 0))))
      (local.set $p (i32.add (local.get $p) (i32.const 64)))
      (br_if $l (i32.lt_u (local.get $p) (local.get $e))))
    (i32.const 1))

  ;; 1 when the `n` bytes at `a` and at `b` are equal (n a multiple of 64).
  (func $equal (export "equal") (param $a i32) (param $b i32) (param $n i32) (result i32)
    (local $e i32)
    (local.set $e (i32.add (local.get $a) (local.get $n)))
    (loop $l
      (if (v128.any_true
            (v128.or
              (v128.or
                (v128.xor (v128.load (local.get $a)) (v128.load (local.get $b)))
                (v128.xor (v128.load offset=16 (local.get $a)) (v128.load offset=16 (local.get $b))))
              (v128.or
                (v128.xor (v128.load offset=32 (local.get $a)) (v128.load offset=32 (local.get $b)))
                (v128.xor (v128.load offset=48 (local.get $a)) (v128.load offset=48 (local.get $b))))))
        (then (return (i32.const 0))))
      (local.set $a (i32.add (local.get $a) (i32.const 64)))
      (local.set $b (i32.add (local.get $b) (i32.const 64)))
      (br_if $l (i32.lt_u (local.get $a) (local.get $e))))
    (i32.const 1))

  ;; XXH64 (seed 0) of the `n` bytes at `p`, n a positive multiple of 32 (so
  ;; there is no tail to mix in).
  (func $xxh64 (export "xxh64") (param $p i32) (param $n i32) (result i64)
    (local $e i32) (local $v1 i64) (local $v2 i64) (local $v3 i64) (local $v4 i64) (local $h i64)
    (local.set $e (i32.add (local.get $p) (local.get $n)))
    (local.set $v1 (i64.const 0x60ea27eeadc0b5d6)) ;; P1 + P2
    (local.set $v2 (i64.const 0xc2b2ae3d27d4eb4f)) ;; P2
    (local.set $v3 (i64.const 0))
    (local.set $v4 (i64.const 0x61c8864e7a143579)) ;; -P1
    (loop $l
      (local.set $v1 (i64.mul (i64.rotl (i64.add (local.get $v1) (i64.mul (i64.load (local.get $p)) (i64.const 0xc2b2ae3d27d4eb4f))) (i64.const 31)) (i64.const 0x9e3779b185ebca87)))
      (local.set $v2 (i64.mul (i64.rotl (i64.add (local.get $v2) (i64.mul (i64.load offset=8 (local.get $p)) (i64.const 0xc2b2ae3d27d4eb4f))) (i64.const 31)) (i64.const 0x9e3779b185ebca87)))
      (local.set $v3 (i64.mul (i64.rotl (i64.add (local.get $v3) (i64.mul (i64.load offset=16 (local.get $p)) (i64.const 0xc2b2ae3d27d4eb4f))) (i64.const 31)) (i64.const 0x9e3779b185ebca87)))
      (local.set $v4 (i64.mul (i64.rotl (i64.add (local.get $v4) (i64.mul (i64.load offset=24 (local.get $p)) (i64.const 0xc2b2ae3d27d4eb4f))) (i64.const 31)) (i64.const 0x9e3779b185ebca87)))
      (local.set $p (i32.add (local.get $p) (i32.const 32)))
      (br_if $l (i32.lt_u (local.get $p) (local.get $e))))
    (local.set $h (i64.add (i64.add (i64.rotl (local.get $v1) (i64.const 1)) (i64.rotl (local.get $v2) (i64.const 7)))
                           (i64.add (i64.rotl (local.get $v3) (i64.const 12)) (i64.rotl (local.get $v4) (i64.const 18)))))
    (local.set $h (call $merge (local.get $h) (local.get $v1)))
    (local.set $h (call $merge (local.get $h) (local.get $v2)))
    (local.set $h (call $merge (local.get $h) (local.get $v3)))
    (local.set $h (call $merge (local.get $h) (local.get $v4)))
    (local.set $h (i64.add (local.get $h) (i64.extend_i32_u (local.get $n))))
    (local.set $h (i64.mul (i64.xor (local.get $h) (i64.shr_u (local.get $h) (i64.const 33))) (i64.const 0xc2b2ae3d27d4eb4f)))
    (local.set $h (i64.mul (i64.xor (local.get $h) (i64.shr_u (local.get $h) (i64.const 29))) (i64.const 0x165667b19e3779f9)))
    (i64.xor (local.get $h) (i64.shr_u (local.get $h) (i64.const 32))))

  (func $merge (param $h i64) (param $v i64) (result i64)
    (i64.add
      (i64.mul
        (i64.xor (local.get $h) (i64.mul (i64.rotl (i64.mul (local.get $v) (i64.const 0xc2b2ae3d27d4eb4f)) (i64.const 31)) (i64.const 0x9e3779b185ebca87)))
        (i64.const 0x9e3779b185ebca87))
      (i64.const 0x85ebca77c2b2ae63)))

  ;; Scans `count` pages of `ps` bytes: OLD's at `old`, NEW's at `new`. For
  ;; page i it writes at oh + 8 i OLD's page hash (the zero-page hash `zh` for
  ;; an all-zero page, without hashing it), at nh + 8 i NEW's (OLD's when the
  ;; pages are equal), both little-endian, and at `flags` + i a byte: 1 NEW's
  ;; page differs from OLD's, 2 OLD's page is all zero, 4 NEW's page is all
  ;; zero (tested only when it differs). Returns how many pages differ.
  (func (export "scan") (param $old i32) (param $new i32) (param $count i32) (param $ps i32) (param $oh i32) (param $nh i32) (param $flags i32) (param $zh i64) (result i32)
    (local $e i32) (local $f i32) (local $ho i64) (local $hn i64) (local $changed i32)
    (local.set $e (i32.add (local.get $flags) (local.get $count)))
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $flags) (local.get $e)))
        (local.set $f (i32.const 0))
        (if (call $is_zero (local.get $old) (local.get $ps))
          (then (local.set $ho (local.get $zh)) (local.set $f (i32.const 2)))
          (else (local.set $ho (call $xxh64 (local.get $old) (local.get $ps)))))
        (local.set $hn (local.get $ho))
        (if (i32.eqz (call $equal (local.get $old) (local.get $new) (local.get $ps)))
          (then
            (local.set $changed (i32.add (local.get $changed) (i32.const 1)))
            (local.set $f (i32.or (local.get $f) (i32.const 1)))
            (if (call $is_zero (local.get $new) (local.get $ps))
              (then (local.set $hn (local.get $zh)) (local.set $f (i32.or (local.get $f) (i32.const 4))))
              (else (local.set $hn (call $xxh64 (local.get $new) (local.get $ps)))))))
        (i64.store (local.get $oh) (local.get $ho))
        (i64.store (local.get $nh) (local.get $hn))
        (i32.store8 (local.get $flags) (local.get $f))
        (local.set $oh (i32.add (local.get $oh) (i32.const 8)))
        (local.set $nh (i32.add (local.get $nh) (i32.const 8)))
        (local.set $flags (i32.add (local.get $flags) (i32.const 1)))
        (local.set $old (i32.add (local.get $old) (local.get $ps)))
        (local.set $new (i32.add (local.get $new) (local.get $ps)))
        (br $l)))
    (local.get $changed))

  ;; Hashes `count` pages of `ps` bytes at `p`: page i's hash at out + 8 i
  ;; (little-endian; `zh` for an all-zero page, not hashed) and at `flags` + i
  ;; a byte, 1 when the page is all zero. Returns how many pages are zero.
  (func (export "hash_pages") (param $p i32) (param $count i32) (param $ps i32) (param $out i32) (param $flags i32) (param $zh i64) (result i32)
    (local $e i32) (local $zeros i32)
    (local.set $e (i32.add (local.get $flags) (local.get $count)))
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $flags) (local.get $e)))
        (if (call $is_zero (local.get $p) (local.get $ps))
          (then
            (i64.store (local.get $out) (local.get $zh))
            (i32.store8 (local.get $flags) (i32.const 1))
            (local.set $zeros (i32.add (local.get $zeros) (i32.const 1))))
          (else
            (i64.store (local.get $out) (call $xxh64 (local.get $p) (local.get $ps)))
            (i32.store8 (local.get $flags) (i32.const 0))))
        (local.set $out (i32.add (local.get $out) (i32.const 8)))
        (local.set $flags (i32.add (local.get $flags) (i32.const 1)))
        (local.set $p (i32.add (local.get $p) (local.get $ps)))
        (br $l)))
    (local.get $zeros))
)
