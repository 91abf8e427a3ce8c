//! The waits the compiler computes are sufficient: in the cycle model's schedule, no
//! two instructions of different units that run at the same time touch overlapping
//! bytes of the same memory where one of them writes.

use compiler::arith::Precision;
use compiler::cycles::schedule;
use compiler::hw::{HwConfig, PARAM_ENTRY_BYTES};
use compiler::isa::{buffer, Instruction, Op};
use compiler::lower::compile;
use compiler::synthetic;
use compiler::zoo::Arch;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Mem {
    Dram,
    Act,
    Wgt,
    Acc,
    Out,
    Param,
}

/// (memory, byte range, is_write) of everything an instruction touches.
fn accesses(hw: &HwConfig, op: &Op) -> Vec<(Mem, std::ops::Range<usize>, bool)> {
    let (r, c) = (hw.rows, hw.cols);
    let rows_of = |base: usize, n: usize, stride: usize, len: usize| {
        (0..n).map(move |i| base + i * stride..base + i * stride + len)
    };
    let mut out = Vec::new();
    match *op {
        Op::Load {
            buffer: b,
            addr,
            dram,
            rows,
            row_bytes,
            dram_stride,
            buf_stride,
        } => {
            let (mem, word) = match b {
                buffer::ACT => (Mem::Act, r),
                buffer::WGT => (Mem::Wgt, c),
                _ => (Mem::Param, PARAM_ENTRY_BYTES),
            };
            out.extend(
                rows_of(dram as usize, rows as usize, dram_stride as usize, row_bytes as usize)
                    .map(|x| (Mem::Dram, x, false)),
            );
            out.extend(
                rows_of(
                    addr as usize * word,
                    rows as usize,
                    buf_stride as usize * word,
                    row_bytes as usize,
                )
                .map(|x| (mem, x, true)),
            );
        }
        Op::Store {
            addr,
            dram,
            rows,
            row_bytes,
            dram_stride,
            buf_stride,
        } => {
            out.extend(
                rows_of(
                    addr as usize * r,
                    rows as usize,
                    buf_stride as usize * r,
                    row_bytes as usize,
                )
                .map(|x| (Mem::Out, x, false)),
            );
            out.extend(
                rows_of(dram as usize, rows as usize, dram_stride as usize, row_bytes as usize)
                    .map(|x| (Mem::Dram, x, true)),
            );
        }
        Op::Matmul {
            act,
            tile_words,
            wgt,
            slices,
            acc,
            pixels,
            ..
        } => {
            out.push((
                Mem::Act,
                act as usize * r..(act as usize + tile_words as usize) * r,
                false,
            ));
            out.push((
                Mem::Wgt,
                wgt as usize * c..(wgt as usize + slices as usize * r) * c,
                false,
            ));
            out.push((Mem::Acc, acc as usize * c..(acc as usize + pixels as usize) * c, true));
        }
        Op::Post {
            acc,
            pixels,
            param,
            channels,
            out: o,
            out_stride,
            lane,
            bits,
            ..
        } => {
            let e = if bits > 8 { 2 } else { 1 };
            out.push((Mem::Acc, acc as usize * c..(acc as usize + pixels as usize) * c, false));
            out.push((
                Mem::Param,
                param as usize * PARAM_ENTRY_BYTES..(param as usize + channels as usize) * PARAM_ENTRY_BYTES,
                false,
            ));
            let start = o as usize * r;
            out.push((
                Mem::Out,
                start..start + (pixels as usize - 1) * out_stride as usize + (lane as usize + channels as usize) * e,
                true,
            ));
        }
        Op::Pool {
            act,
            tile_w,
            groups,
            kernel_h,
            stride,
            out_h,
            out_w,
            out: o,
            ..
        } => {
            let in_rows = (out_h as usize - 1) * stride as usize + kernel_h as usize;
            out.push((
                Mem::Act,
                act as usize * r..(act as usize + in_rows * tile_w as usize * groups as usize) * r,
                false,
            ));
            out.push((
                Mem::Out,
                o as usize * r..(o as usize + out_h as usize * out_w as usize * groups as usize) * r,
                true,
            ));
        }
        Op::Add {
            a, b, out: o, words, ..
        } => {
            for x in [a, b] {
                out.push((Mem::Act, x as usize * r..(x as usize + words as usize) * r, false));
            }
            out.push((Mem::Out, o as usize * r..(o as usize + words as usize) * r, true));
        }
        Op::End {} => {}
    }
    out
}

fn overlaps(a: &std::ops::Range<usize>, b: &std::ops::Range<usize>) -> bool {
    a.start < b.end && b.start < a.end
}

fn assert_race_free(hw: &HwConfig, program: &[Instruction]) {
    let s = schedule(hw, program).unwrap();
    let acc: Vec<_> = program.iter().map(|i| accesses(hw, &i.op)).collect();
    let mut order: Vec<usize> = (0..program.len()).collect();
    order.sort_by_key(|&i| s.start[i]);
    for (k, &i) in order.iter().enumerate() {
        for &j in &order[k + 1..] {
            if s.start[j] >= s.end[i] {
                break;
            }
            if program[i].op.unit() == program[j].op.unit() {
                continue;
            }
            for (mi, ri, wi) in &acc[i] {
                for (mj, rj, wj) in &acc[j] {
                    assert!(
                        !(mi == mj && (*wi || *wj) && overlaps(ri, rj)),
                        "race between {i} ({}) and {j} ({}) on {mi:?}",
                        program[i],
                        program[j]
                    );
                }
            }
        }
    }
}

#[test]
fn compiled_programs_are_race_free() {
    let models = [
        synthetic::small_cnn([1, 28, 28], 10, Precision::W8A8, 0).unwrap(),
        synthetic::random_model(Arch::Resnet8, [3, 16, 16], 10, 0.5, Precision::W8A8, 0).unwrap(),
        synthetic::tiny_resnet([2, 9, 9], 4, Precision::W8A8, 0).unwrap(),
    ];
    let small = HwConfig {
        act_buffer_words: 320,
        weight_buffer_words: 32,
        acc_buffer_words: 16,
        out_buffer_words: 64,
        param_buffer_entries: 16,
        ..HwConfig::preset(4, 4).unwrap()
    };
    for model in &models {
        for hw in [
            HwConfig::preset(8, 8).unwrap(),
            HwConfig::preset(2, 3).unwrap(),
            small.clone(),
        ] {
            let compiled = compile(model, &hw).unwrap_or_else(|e| panic!("{}: {e}", model.name));
            assert_race_free(&hw, &compiled.program);
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(32))]
    #[test]
    fn random_hardware_gives_race_free_programs(seed in proptest::prelude::any::<u64>(), rows in 1usize..=8, cols in 1usize..=8, act in 64usize..2048, acc in 2usize..128, out in 32usize..256, wgt_slices in 2usize..32) {
        let model = synthetic::tiny_resnet([3, 8, 8], 4, Precision::W8A8, seed).unwrap();
        let hw = HwConfig { act_buffer_words: act, acc_buffer_words: acc, out_buffer_words: out, weight_buffer_words: wgt_slices * rows, param_buffer_entries: 2 * cols, ..HwConfig::preset(rows, cols).unwrap() };
        if let Ok(compiled) = compile(&model, &hw) {
            assert_race_free(&hw, &compiled.program);
        }
    }
}
