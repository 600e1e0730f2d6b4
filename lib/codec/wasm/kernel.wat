;; The XBZRLE SIMD kernel (WebAssembly text). Assembled by scripts/build-wasm.mjs
;; into lib/codec/wasm/kernel-wasm.ts at build time, in two variants: one that
;; imports a shared memory (views never detach when it grows) and one that
;; imports a plain memory (for runtimes without SharedArrayBuffer).
;;
;; All pointers and lengths are byte offsets into the imported memory. The
;; encoder follows QEMU's scalar rule exactly (spec: xbzrle-codec.md §3):
;; byte-maximal runs, the first zero run may be 0, no trailing zero run, and
;; the room checks at the start of a pair (2 bytes), after a zero-run length
;; (2 bytes) and after a non-zero-run length (the run). It never writes at or
;; past out + dlen.
(module
  (import "env" "memory" (memory 1 65536 shared))

  ;; QEMU's xbzrle_encode_buffer: -1 overflow, 0 unchanged, else the delta
  ;; length; -2 where QEMU would abort (a run over 16383 bytes). The two scans
  ;; are written inline: a call per run costs V8 up to a fifth of the time on
  ;; dense pages. Each scans 64 bytes per step (four i8x16.eq), and where a
  ;; step holds the boundary, the 64-bit lane mask gives its exact position.
  ;; That mask (mk: bit k set when byte mb + k is equal in both pages, for
  ;; k < ml; ml 0 when there is none) is kept: the next scan first looks for
  ;; its own end in it, so short runs cost no loads (1.4-1.6x on dense pages).
  (func $encode (export "encode") (param $p i32) (param $c i32) (param $slen i32) (param $out i32) (param $dlen i32) (result i32)
    (local $i i32) (local $d i32) (local $start i32) (local $run i32) (local $k i32)
    (local $m i32) (local $a i32) (local $b i32)
    (local $mk i64) (local $mb i32) (local $ml i32)
    (local $e0 v128) (local $e1 v128) (local $e2 v128) (local $e3 v128)
    (if (i32.eqz (local.get $slen)) (then (return (i32.const 0))))
    (if (i32.lt_s (local.get $dlen) (i32.const 2)) (then (return (i32.const -1))))
    (loop $pair
      (if (i32.gt_s (i32.add (local.get $d) (i32.const 2)) (local.get $dlen)) (then (return (i32.const -1))))
      (local.set $start (local.get $i))
      ;; Zero run: the first i >= start where the pages differ, or slen.
      (local.set $i
        (block $zdone (result i32)
          ;; The block that ended the last run may hold the end of this one:
          ;; look in its equality mask first.
          (if (local.get $ml)
            (then
              (if (i32.lt_u (local.get $i) (i32.add (local.get $mb) (local.get $ml)))
                (then
                  (local.set $k (i32.wrap_i64 (i64.ctz (i64.shr_u (i64.xor (local.get $mk) (i64.const -1))
                    (i64.extend_i32_u (i32.sub (local.get $i) (local.get $mb)))))))
                  (if (i32.lt_u (local.get $k) (i32.sub (i32.add (local.get $mb) (local.get $ml)) (local.get $i)))
                    (then (br $zdone (i32.add (local.get $i) (local.get $k)))))
                  (local.set $i (i32.add (local.get $mb) (local.get $ml)))))
              (local.set $ml (i32.const 0))))
          ;; One unaligned 16-byte step, then on from the next 16-byte boundary of
          ;; cur: cur's loads never straddle a cache line (nor prev's when both
          ;; share an alignment, as pages do); a few percent on pages with many
          ;; runs. The bytes between are compared twice.
          (if (i32.le_u (i32.add (local.get $i) (i32.const 16)) (local.get $slen))
            (then
              (local.set $m (i8x16.bitmask (i8x16.eq
                (v128.load (i32.add (local.get $p) (local.get $i)))
                (v128.load (i32.add (local.get $c) (local.get $i))))))
              (if (i32.ne (local.get $m) (i32.const 0xffff))
                (then
                  (local.set $mk (i64.extend_i32_u (local.get $m)))
                  (local.set $mb (local.get $i))
                  (local.set $ml (i32.const 16))
                  (br $zdone (i32.add (local.get $i) (i32.ctz (i32.xor (local.get $m) (i32.const 0xffff)))))))
              (local.set $i (i32.sub (i32.and (i32.add (i32.add (local.get $c) (local.get $i)) (i32.const 16)) (i32.const -16)) (local.get $c)))))
          (block $z64done
            (loop $z64
              (br_if $z64done (i32.gt_u (i32.add (local.get $i) (i32.const 64)) (local.get $slen)))
            (local.set $a (i32.add (local.get $p) (local.get $i)))
            (local.set $b (i32.add (local.get $c) (local.get $i)))
            (local.set $e0 (i8x16.eq (v128.load (local.get $a)) (v128.load (local.get $b))))
            (local.set $e1 (i8x16.eq (v128.load offset=16 (local.get $a)) (v128.load offset=16 (local.get $b))))
            (local.set $e2 (i8x16.eq (v128.load offset=32 (local.get $a)) (v128.load offset=32 (local.get $b))))
            (local.set $e3 (i8x16.eq (v128.load offset=48 (local.get $a)) (v128.load offset=48 (local.get $b))))
              (if (i32.eqz (i8x16.all_true (v128.and (v128.and (local.get $e0) (local.get $e1)) (v128.and (local.get $e2) (local.get $e3)))))
                (then
                  (local.set $mk
                  (i64.or
                  (i64.or
                    (i64.extend_i32_u (i8x16.bitmask (local.get $e0)))
                    (i64.shl (i64.extend_i32_u (i8x16.bitmask (local.get $e1))) (i64.const 16)))
                  (i64.or
                    (i64.shl (i64.extend_i32_u (i8x16.bitmask (local.get $e2))) (i64.const 32))
                    (i64.shl (i64.extend_i32_u (i8x16.bitmask (local.get $e3))) (i64.const 48)))))
                  (local.set $mb (local.get $i))
                  (local.set $ml (i32.const 64))
                  (br $zdone (i32.add (local.get $i) (i32.wrap_i64 (i64.ctz (i64.xor (i64.const -1) (local.get $mk))))))))
              (local.set $i (i32.add (local.get $i) (i32.const 64)))
              (br $z64)))
          (block $z16done
            (loop $z16
              (br_if $z16done (i32.gt_u (i32.add (local.get $i) (i32.const 16)) (local.get $slen)))
              (local.set $m
              (i8x16.bitmask
                (i8x16.eq
                  (v128.load (i32.add (local.get $p) (local.get $i)))
                  (v128.load (i32.add (local.get $c) (local.get $i))))))
              (if (i32.ne (local.get $m) (i32.const 0xffff))
                (then
                  (local.set $mk (i64.extend_i32_u (local.get $m)))
                  (local.set $mb (local.get $i))
                  (local.set $ml (i32.const 16))
                  (br $zdone (i32.add (local.get $i) (i32.ctz (i32.xor (local.get $m) (i32.const 0xffff)))))))
              (local.set $i (i32.add (local.get $i) (i32.const 16)))
              (br $z16)))
          (block $zbdone
            (loop $zb
              (br_if $zbdone (i32.ge_u (local.get $i) (local.get $slen)))
              (br_if $zbdone
                (i32.ne
                  (i32.load8_u (i32.add (local.get $p) (local.get $i)))
                  (i32.load8_u (i32.add (local.get $c) (local.get $i)))))
              (local.set $i (i32.add (local.get $i) (i32.const 1)))
              (br $zb)))
          (local.get $i)))
      (if (i32.eq (local.get $i) (local.get $slen)) (then (return (local.get $d))))
      (local.set $run (i32.sub (local.get $i) (local.get $start)))
      (if (i32.gt_u (local.get $run) (i32.const 16383)) (then (return (i32.const -2))))
      (local.set $a (i32.add (local.get $out) (local.get $d)))
      (if (i32.lt_u (local.get $run) (i32.const 0x80))
        (then
          (i32.store8 (local.get $a) (local.get $run))
          (local.set $d (i32.add (local.get $d) (i32.const 1))))
        (else
          (i32.store8 (local.get $a) (i32.or (i32.and (local.get $run) (i32.const 0x7f)) (i32.const 0x80)))
          (i32.store8 offset=1 (local.get $a) (i32.shr_u (local.get $run) (i32.const 7)))
          (local.set $d (i32.add (local.get $d) (i32.const 2)))))
      (if (i32.gt_s (i32.add (local.get $d) (i32.const 2)) (local.get $dlen)) (then (return (i32.const -1))))
      (local.set $start (local.get $i))
      ;; Non-zero run: the first i >= start where the pages are equal, or slen.
      (local.set $i
        (block $ndone (result i32)
          ;; The block that ended the zero run usually holds the end of this
          ;; run too: look in its equality mask before loading anything.
          (if (local.get $ml)
            (then
              (local.set $k (i32.wrap_i64 (i64.ctz (i64.shr_u (local.get $mk)
                (i64.extend_i32_u (i32.sub (local.get $i) (local.get $mb)))))))
              (if (i32.lt_u (local.get $k) (i32.sub (i32.add (local.get $mb) (local.get $ml)) (local.get $i)))
                (then (br $ndone (i32.add (local.get $i) (local.get $k)))))
              (local.set $i (i32.add (local.get $mb) (local.get $ml)))
              (local.set $ml (i32.const 0))))
          (block $n64done
            (loop $n64
              (br_if $n64done (i32.gt_u (i32.add (local.get $i) (i32.const 64)) (local.get $slen)))
            (local.set $a (i32.add (local.get $p) (local.get $i)))
            (local.set $b (i32.add (local.get $c) (local.get $i)))
            (local.set $e0 (i8x16.eq (v128.load (local.get $a)) (v128.load (local.get $b))))
            (local.set $e1 (i8x16.eq (v128.load offset=16 (local.get $a)) (v128.load offset=16 (local.get $b))))
            (local.set $e2 (i8x16.eq (v128.load offset=32 (local.get $a)) (v128.load offset=32 (local.get $b))))
            (local.set $e3 (i8x16.eq (v128.load offset=48 (local.get $a)) (v128.load offset=48 (local.get $b))))
              (if (v128.any_true (v128.or (v128.or (local.get $e0) (local.get $e1)) (v128.or (local.get $e2) (local.get $e3))))
                (then
                  (local.set $mk
                  (i64.or
                  (i64.or
                    (i64.extend_i32_u (i8x16.bitmask (local.get $e0)))
                    (i64.shl (i64.extend_i32_u (i8x16.bitmask (local.get $e1))) (i64.const 16)))
                  (i64.or
                    (i64.shl (i64.extend_i32_u (i8x16.bitmask (local.get $e2))) (i64.const 32))
                    (i64.shl (i64.extend_i32_u (i8x16.bitmask (local.get $e3))) (i64.const 48)))))
                  (local.set $mb (local.get $i))
                  (local.set $ml (i32.const 64))
                  (br $ndone (i32.add (local.get $i) (i32.wrap_i64 (i64.ctz (local.get $mk)))))))
              (local.set $i (i32.add (local.get $i) (i32.const 64)))
              (br $n64)))
          (block $n16done
            (loop $n16
              (br_if $n16done (i32.gt_u (i32.add (local.get $i) (i32.const 16)) (local.get $slen)))
              (local.set $m
              (i8x16.bitmask
                (i8x16.eq
                  (v128.load (i32.add (local.get $p) (local.get $i)))
                  (v128.load (i32.add (local.get $c) (local.get $i))))))
              (if (local.get $m)
                (then
                  (local.set $mk (i64.extend_i32_u (local.get $m)))
                  (local.set $mb (local.get $i))
                  (local.set $ml (i32.const 16))
                  (br $ndone (i32.add (local.get $i) (i32.ctz (local.get $m))))))
              (local.set $i (i32.add (local.get $i) (i32.const 16)))
              (br $n16)))
          (block $nbdone
            (loop $nb
              (br_if $nbdone (i32.ge_u (local.get $i) (local.get $slen)))
              (br_if $nbdone
                (i32.eq
                  (i32.load8_u (i32.add (local.get $p) (local.get $i)))
                  (i32.load8_u (i32.add (local.get $c) (local.get $i)))))
              (local.set $i (i32.add (local.get $i) (i32.const 1)))
              (br $nb)))
          (local.get $i)))
      (local.set $run (i32.sub (local.get $i) (local.get $start)))
      (if (i32.gt_u (local.get $run) (i32.const 16383)) (then (return (i32.const -2))))
      (local.set $a (i32.add (local.get $out) (local.get $d)))
      (if (i32.lt_u (local.get $run) (i32.const 0x80))
        (then
          (i32.store8 (local.get $a) (local.get $run))
          (local.set $d (i32.add (local.get $d) (i32.const 1))))
        (else
          (i32.store8 (local.get $a) (i32.or (i32.and (local.get $run) (i32.const 0x7f)) (i32.const 0x80)))
          (i32.store8 offset=1 (local.get $a) (i32.shr_u (local.get $run) (i32.const 7)))
          (local.set $d (i32.add (local.get $d) (i32.const 2)))))
      (if (i32.gt_s (i32.add (local.get $d) (local.get $run)) (local.get $dlen)) (then (return (i32.const -1))))
      ;; Copy the run: whole vectors for short runs, then the last bytes;
      ;; memory.copy for long runs. Never past the run: nothing
      ;; after the delta's end is touched, as with QEMU.
      (if (i32.le_u (local.get $run) (i32.const 64))
        (then
          (local.set $k (i32.const 0))
          (block $vdone
            (loop $vc
              (br_if $vdone (i32.gt_u (i32.add (local.get $k) (i32.const 16)) (local.get $run)))
              (v128.store
                (i32.add (i32.add (local.get $out) (local.get $d)) (local.get $k))
                (v128.load (i32.add (i32.add (local.get $c) (local.get $start)) (local.get $k))))
              (local.set $k (i32.add (local.get $k) (i32.const 16)))
              (br $vc)))
          ;; The last run - k < 16 bytes: 8, 4, 2 and 1-byte moves by the bits of the count.
          (local.set $a (i32.add (i32.add (local.get $out) (local.get $d)) (local.get $k)))
          (local.set $b (i32.add (i32.add (local.get $c) (local.get $start)) (local.get $k)))
          (local.set $k (i32.sub (local.get $run) (local.get $k)))
          (if (i32.and (local.get $k) (i32.const 8))
            (then
              (i64.store (local.get $a) (i64.load (local.get $b)))
              (local.set $a (i32.add (local.get $a) (i32.const 8)))
              (local.set $b (i32.add (local.get $b) (i32.const 8)))))
          (if (i32.and (local.get $k) (i32.const 4))
            (then
              (i32.store (local.get $a) (i32.load (local.get $b)))
              (local.set $a (i32.add (local.get $a) (i32.const 4)))
              (local.set $b (i32.add (local.get $b) (i32.const 4)))))
          (if (i32.and (local.get $k) (i32.const 2))
            (then
              (i32.store16 (local.get $a) (i32.load16_u (local.get $b)))
              (local.set $a (i32.add (local.get $a) (i32.const 2)))
              (local.set $b (i32.add (local.get $b) (i32.const 2)))))
          (if (i32.and (local.get $k) (i32.const 1))
            (then (i32.store8 (local.get $a) (i32.load8_u (local.get $b))))))
        (else
          (memory.copy
            (i32.add (local.get $out) (local.get $d))
            (i32.add (local.get $c) (local.get $start))
            (local.get $run))))
      (local.set $d (i32.add (local.get $d) (local.get $run)))
      (br_if $pair (i32.lt_u (local.get $i) (local.get $slen))))
    (local.get $d))

  ;; 1 when n bytes at p are all zero, else 0.
  (func $is_zero (export "is_zero") (param $p i32) (param $n i32) (result i32)
    (local $i i32) (local $a i32)
    (block $out64
      (loop $l64
        (br_if $out64 (i32.gt_u (i32.add (local.get $i) (i32.const 64)) (local.get $n)))
        (local.set $a (i32.add (local.get $p) (local.get $i)))
        (if (v128.any_true
              (v128.or
                (v128.or (v128.load (local.get $a)) (v128.load offset=16 (local.get $a)))
                (v128.or (v128.load offset=32 (local.get $a)) (v128.load offset=48 (local.get $a)))))
          (then (return (i32.const 0))))
        (local.set $i (i32.add (local.get $i) (i32.const 64)))
        (br $l64)))
    (block $outb
      (loop $lb
        (br_if $outb (i32.ge_u (local.get $i) (local.get $n)))
        (if (i32.load8_u (i32.add (local.get $p) (local.get $i))) (then (return (i32.const 0))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $lb)))
    (i32.const 1))


  ;; Applies a delta known to be valid (one `encode` just produced) to the page
  ;; at dst: writes only the changed runs, which is much less than copying the
  ;; page when few bytes changed.
  (func $apply (export "apply") (param $src i32) (param $slen i32) (param $dst i32)
    (local $i i32) (local $d i32) (local $v i32) (local $n i32) (local $a i32)
    (block $done
      (loop $pair
        (br_if $done (i32.ge_u (local.get $i) (local.get $slen)))
        (local.set $a (i32.add (local.get $src) (local.get $i)))
        (local.set $v (i32.load8_u (local.get $a)))
        (if (i32.ge_u (local.get $v) (i32.const 0x80))
          (then (local.set $v (i32.or (i32.or (i32.and (local.get $v) (i32.const 0x7f)) (i32.shl (i32.load8_u offset=1 (local.get $a)) (i32.const 7))) (i32.const 0x20000))))
          (else (local.set $v (i32.or (local.get $v) (i32.const 0x10000)))))
        (local.set $i (i32.add (local.get $i) (i32.shr_u (local.get $v) (i32.const 16))))
        (local.set $d (i32.add (local.get $d) (i32.and (local.get $v) (i32.const 0xffff))))
        (local.set $a (i32.add (local.get $src) (local.get $i)))
        (local.set $v (i32.load8_u (local.get $a)))
        (if (i32.ge_u (local.get $v) (i32.const 0x80))
          (then (local.set $v (i32.or (i32.or (i32.and (local.get $v) (i32.const 0x7f)) (i32.shl (i32.load8_u offset=1 (local.get $a)) (i32.const 7))) (i32.const 0x20000))))
          (else (local.set $v (i32.or (local.get $v) (i32.const 0x10000)))))
        (local.set $i (i32.add (local.get $i) (i32.shr_u (local.get $v) (i32.const 16))))
        (local.set $n (i32.and (local.get $v) (i32.const 0xffff)))
        (memory.copy (i32.add (local.get $dst) (local.get $d)) (i32.add (local.get $src) (local.get $i)) (local.get $n))
        (local.set $i (i32.add (local.get $i) (local.get $n)))
        (local.set $d (i32.add (local.get $d) (local.get $n)))
        (br $pair))))

  ;; memmove inside the memory (native speed; JS copyWithin on shared memory is slower).
  (func (export "copy") (param $dst i32) (param $src i32) (param $n i32)
    (memory.copy (local.get $dst) (local.get $src) (local.get $n)))

  ;; QEMU's xbzrle_decode_buffer checks (spec §4), without writing: the end of
  ;; the last run on success, or -1 - (position of the failing element).
  (func $check (param $src i32) (param $slen i32) (param $dlen i32) (result i32)
    (local $i i32) (local $d i32) (local $v i32) (local $n i32) (local $at i32) (local $a i32) (local $b i32)
    (block $done
      (loop $pair
        (br_if $done (i32.ge_u (local.get $i) (local.get $slen)))
        ;; zero run: two bytes must remain; a valid length; zero only at the start
        (if (i32.lt_u (i32.sub (local.get $slen) (local.get $i)) (i32.const 2))
          (then (return (i32.sub (i32.const -1) (local.get $i)))))
        (local.set $a (i32.add (local.get $src) (local.get $i)))
        (local.set $b (i32.load8_u (local.get $a)))
        (if (i32.lt_u (local.get $b) (i32.const 0x80))
          (then (local.set $v (i32.or (local.get $b) (i32.const 0x10000))))
          (else
            (local.set $v (i32.load8_u offset=1 (local.get $a)))
            (local.set $v
              (if (result i32) (i32.ge_u (local.get $v) (i32.const 0x80))
                (then (i32.const -1))
                (else (i32.or (i32.or (i32.and (local.get $b) (i32.const 0x7f)) (i32.shl (local.get $v) (i32.const 7))) (i32.const 0x20000)))))))
        (if (i32.lt_s (local.get $v) (i32.const 0)) (then (return (i32.sub (i32.const -1) (local.get $i)))))
        (if (i32.and (i32.eqz (i32.and (local.get $v) (i32.const 0xffff))) (i32.ne (local.get $i) (i32.const 0)))
          (then (return (i32.sub (i32.const -1) (local.get $i)))))
        (local.set $at (local.get $i))
        (local.set $i (i32.add (local.get $i) (i32.shr_u (local.get $v) (i32.const 16))))
        (local.set $d (i32.add (local.get $d) (i32.and (local.get $v) (i32.const 0xffff))))
        (if (i32.gt_u (local.get $d) (local.get $dlen)) (then (return (i32.sub (i32.const -1) (local.get $at)))))
        ;; non-zero run
        (if (i32.lt_u (i32.sub (local.get $slen) (local.get $i)) (i32.const 2))
          (then (return (i32.sub (i32.const -1) (local.get $i)))))
        (local.set $a (i32.add (local.get $src) (local.get $i)))
        (local.set $b (i32.load8_u (local.get $a)))
        (if (i32.lt_u (local.get $b) (i32.const 0x80))
          (then (local.set $v (i32.or (local.get $b) (i32.const 0x10000))))
          (else
            (local.set $v (i32.load8_u offset=1 (local.get $a)))
            (local.set $v
              (if (result i32) (i32.ge_u (local.get $v) (i32.const 0x80))
                (then (i32.const -1))
                (else (i32.or (i32.or (i32.and (local.get $b) (i32.const 0x7f)) (i32.shl (local.get $v) (i32.const 7))) (i32.const 0x20000)))))))
        (if (i32.lt_s (local.get $v) (i32.const 0)) (then (return (i32.sub (i32.const -1) (local.get $i)))))
        (local.set $n (i32.and (local.get $v) (i32.const 0xffff)))
        (if (i32.eqz (local.get $n)) (then (return (i32.sub (i32.const -1) (local.get $i)))))
        (local.set $at (local.get $i))
        (local.set $i (i32.add (local.get $i) (i32.shr_u (local.get $v) (i32.const 16))))
        (if (i32.gt_u (i32.add (local.get $d) (local.get $n)) (local.get $dlen)) (then (return (i32.sub (i32.const -1) (local.get $at)))))
        (if (i32.gt_u (i32.add (local.get $i) (local.get $n)) (local.get $slen)) (then (return (i32.sub (i32.const -1) (local.get $at)))))
        (local.set $i (i32.add (local.get $i) (local.get $n)))
        (local.set $d (i32.add (local.get $d) (local.get $n)))
        (br $pair)))
    (local.get $d))


  ;; QEMU's decoder, validating first: on success applies the delta to the
  ;; page at dst and returns the end of the last run; on failure writes
  ;; nothing and returns -1 - (position of the failing element).
  (func (export "decode") (param $src i32) (param $slen i32) (param $dst i32) (param $dlen i32) (result i32)
    (local $r i32)
    (local.set $r (call $check (local.get $src) (local.get $slen) (local.get $dlen)))
    (if (i32.ge_s (local.get $r) (i32.const 0)) (then (call $apply (local.get $src) (local.get $slen) (local.get $dst))))
    (local.get $r))

  ;; One page of the sender's decision (ram-stream.md §8), fused so the stream
  ;; makes one call per page: -3 when `cur` is all zero; -4 when there is no
  ;; cached copy (prev = 0: the allocator never hands out address 0, and any
  ;; other address, up to 4 GiB, is valid); else the encode result against `prev`. With
  ;; `update`, the cached copy then becomes what is sent: the delta is applied
  ;; to it (only the changed runs), or on overflow the page is copied in.
  (func $step (export "step") (param $prev i32) (param $cur i32) (param $out i32) (param $n i32) (param $update i32) (result i32)
    (local $len i32)
    (if (call $is_zero (local.get $cur) (local.get $n)) (then (return (i32.const -3))))
    (if (i32.eqz (local.get $prev)) (then (return (i32.const -4))))
    (local.set $len (call $encode (local.get $prev) (local.get $cur) (local.get $n) (local.get $out) (local.get $n)))
    (if (local.get $update)
      (then
        (if (i32.gt_s (local.get $len) (i32.const 0))
          (then (call $apply (local.get $out) (local.get $len) (local.get $prev)))
          (else
            (if (i32.lt_s (local.get $len) (i32.const 0))
              (then (memory.copy (local.get $prev) (local.get $cur) (local.get $n))))))))
    (local.get $len))

  ;; The big-endian 64-bit record header (offset | flags) at `at`.
  (func $header (param $at i32) (param $v i64)
    (v128.store64_lane align=1 0 (local.get $at)
      (i8x16.shuffle 7 6 5 4 3 2 1 0 8 9 10 11 12 13 14 15 (i64x2.splat (local.get $v)) (i64x2.splat (local.get $v)))))

  ;; `n` consecutive pages of one block through `step`, each page's record
  ;; written after the last at `rec` (the encoder's worker jobs: a run of pages
  ;; in one call). Page i is at cur + i * ps, its cached copy's address (0:
  ;; none) is the i32 at prevs + 4i, its step's result goes to the i32 at
  ;; res + 4i, and its delta is made at `scratch` (one page, 8-aligned) then
  ;; copied into its record. Records as ram-stream.md §4, every one with
  ;; CONTINUE and no block name (the caller writes the first record of a
  ;; block itself), the page offsets from `off` (lo, hi) on: ZERO (fill 0)
  ;; for an all-zero page; PAGE for a miss (the page), an overflow (the cached
  ;; copy, which the step made the page, with `update`; else the page);
  ;; nothing for an unchanged page; else XBZRLE. With `budget` >= 0, stops
  ;; after the first page whose record brings the bytes written to `budget`
  ;; or more (where a writer record by record would emit an output chunk: the
  ;; pages after it are left for the next call). Returns the bytes written.
  (func (export "step_run") (param $prevs i32) (param $cur i32) (param $n i32) (param $ps i32) (param $update i32)
    (param $rec i32) (param $res i32) (param $scratch i32) (param $off_lo i32) (param $off_hi i32) (param $budget i32) (result i32)
    (local $i i32) (local $r i32) (local $pos i32) (local $prev i32) (local $off i64)
    (local.set $pos (local.get $rec))
    (local.set $off (i64.or (i64.shl (i64.extend_i32_u (local.get $off_hi)) (i64.const 32)) (i64.extend_i32_u (local.get $off_lo))))
    (block $done
      (loop $page
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $prev (i32.load (i32.add (local.get $prevs) (i32.shl (local.get $i) (i32.const 2)))))
        (local.set $r (call $step (local.get $prev) (local.get $cur) (local.get $scratch) (local.get $ps) (local.get $update)))
        (i32.store (i32.add (local.get $res) (i32.shl (local.get $i) (i32.const 2))) (local.get $r))
        (if (i32.gt_s (local.get $r) (i32.const 0))
          (then
            ;; XBZRLE | CONTINUE, the encoding byte, the delta's be16 length, the delta.
            (call $header (local.get $pos) (i64.or (local.get $off) (i64.const 0x60)))
            (i32.store8 offset=8 (local.get $pos) (i32.const 1))
            (i32.store8 offset=9 (local.get $pos) (i32.shr_u (local.get $r) (i32.const 8)))
            (i32.store8 offset=10 (local.get $pos) (local.get $r))
            (memory.copy (i32.add (local.get $pos) (i32.const 11)) (local.get $scratch) (local.get $r))
            (local.set $pos (i32.add (local.get $pos) (i32.add (local.get $r) (i32.const 11)))))
          (else
            (if (i32.eq (local.get $r) (i32.const -3))
              (then
                ;; ZERO | CONTINUE, fill byte 0.
                (call $header (local.get $pos) (i64.or (local.get $off) (i64.const 0x22)))
                (i32.store8 offset=8 (local.get $pos) (i32.const 0))
                (local.set $pos (i32.add (local.get $pos) (i32.const 9))))
              (else
                (if (i32.ne (local.get $r) (i32.const 0))
                  (then
                    ;; PAGE | CONTINUE and the page (from the cached copy after an overflow it was updated with).
                    (call $header (local.get $pos) (i64.or (local.get $off) (i64.const 0x28)))
                    (memory.copy (i32.add (local.get $pos) (i32.const 8))
                      (select (local.get $prev) (local.get $cur)
                        (i32.and (local.get $update) (i32.ne (local.get $r) (i32.const -4))))
                      (local.get $ps))
                    (local.set $pos (i32.add (local.get $pos) (i32.add (local.get $ps) (i32.const 8))))))))))
        (local.set $cur (i32.add (local.get $cur) (local.get $ps)))
        (local.set $off (i64.add (local.get $off) (i64.extend_i32_u (local.get $ps))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        ;; A record was written (an unchanged page writes none) and the budget is reached: stop here.
        (br_if $done (i32.and (i32.ne (local.get $r) (i32.const 0))
          (i32.and (i32.ge_s (local.get $budget) (i32.const 0))
            (i32.ge_s (i32.sub (local.get $pos) (local.get $rec)) (local.get $budget)))))
        (br $page)))
    (i32.sub (local.get $pos) (local.get $rec)))
)
