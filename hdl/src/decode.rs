//! Instruction decoders: the fields of a 64-byte instruction (docs/isa.md §4,
//! `compiler::isa` is the encoding) as the ports of the engine that runs it.
//! Pure wiring, one block per unit; the tests decode random instructions encoded by
//! `compiler::isa::encode` in rust-hdl's simulator.
//!
//! Field `f` at byte offset `o` is bits `8*o..` of the instruction (`get_bits` with a
//! literal offset: `#[hdl_gen]` copies expressions verbatim, so the offsets are
//! literals, checked by the tests). Widths follow the engines: `u8` flags become a
//! `Bit` (any bit set), and the DMA's buffer stride takes the low 16 bits of
//! `buf_stride` (buffer addresses are 16 bits). Bits a decoder does not use go to
//! signals named `unused_*`, which Verilator's lint skips by name.

use rust_hdl::prelude::*;

use crate::controller::Insn;
#[cfg(test)]
use crate::controller::INSN_USED_BYTES;

type B16 = Bits<16>;
type B32 = Bits<32>;

/// `load` (opcode 1): buffer@14, addr@15, dram@17, rows@21, row_bytes@23,
/// dram_stride@27, buf_stride@31.
#[derive(LogicBlock, Default)]
pub struct LoadDecode {
    pub insn: Signal<In, Insn>,
    pub buffer: Signal<Out, Bits<8>>,
    pub addr: Signal<Out, B16>,
    pub dram: Signal<Out, B32>,
    pub rows: Signal<Out, B16>,
    pub row_bytes: Signal<Out, B32>,
    pub dram_stride: Signal<Out, B32>,
    pub buf_stride: Signal<Out, B16>,
    unused_header: Signal<Local, Bits<112>>,
    unused_tail: Signal<Local, Bits<80>>,
}

impl Logic for LoadDecode {
    #[hdl_gen]
    fn update(&mut self) {
        self.buffer.next = self.insn.val().get_bits::<8>(112);
        self.addr.next = self.insn.val().get_bits::<16>(120);
        self.dram.next = self.insn.val().get_bits::<32>(136);
        self.rows.next = self.insn.val().get_bits::<16>(168);
        self.row_bytes.next = self.insn.val().get_bits::<32>(184);
        self.dram_stride.next = self.insn.val().get_bits::<32>(216);
        self.buf_stride.next = self.insn.val().get_bits::<16>(248);
        self.unused_header.next = self.insn.val().get_bits::<112>(0);
        self.unused_tail.next = self.insn.val().get_bits::<80>(264);
    }
}

/// `store` (opcode 2): addr@14, dram@16, rows@20, row_bytes@22, dram_stride@26,
/// buf_stride@30.
#[derive(LogicBlock, Default)]
pub struct StoreDecode {
    pub insn: Signal<In, Insn>,
    pub addr: Signal<Out, B16>,
    pub dram: Signal<Out, B32>,
    pub rows: Signal<Out, B16>,
    pub row_bytes: Signal<Out, B32>,
    pub dram_stride: Signal<Out, B32>,
    pub buf_stride: Signal<Out, B16>,
    unused_header: Signal<Local, Bits<112>>,
    unused_tail: Signal<Local, Bits<88>>,
}

impl Logic for StoreDecode {
    #[hdl_gen]
    fn update(&mut self) {
        self.addr.next = self.insn.val().get_bits::<16>(112);
        self.dram.next = self.insn.val().get_bits::<32>(128);
        self.rows.next = self.insn.val().get_bits::<16>(160);
        self.row_bytes.next = self.insn.val().get_bits::<32>(176);
        self.dram_stride.next = self.insn.val().get_bits::<32>(208);
        self.buf_stride.next = self.insn.val().get_bits::<16>(240);
        self.unused_header.next = self.insn.val().get_bits::<112>(0);
        self.unused_tail.next = self.insn.val().get_bits::<88>(256);
    }
}

/// The exec unit's instructions: which engine (`matmul` 3, `post` 4, `pool` 5,
/// `add` 6; `end` 7 never reaches an engine) and every engine's fields.
#[derive(LogicBlock)]
pub struct ExecDecode {
    pub insn: Signal<In, Insn>,
    pub is_matmul: Signal<Out, Bit>,
    pub is_post: Signal<Out, Bit>,
    pub is_pool: Signal<Out, Bit>,
    pub is_add: Signal<Out, Bit>,
    /// `matmul`: act@14 tile_words@16 pitch@18 y0@20 x0@22 x_first@24 x_last@26
    /// ox_step@28 oy_step@30 out_w@32 pixels@34 wgt@36 slices@38 acc@40 flags@42
    /// (bit 0 `accumulate`, bit 1 `act_signed`; the other six are `unused_mm_flags`).
    pub mm_act: Signal<Out, B16>,
    pub mm_tile_words: Signal<Out, B16>,
    pub mm_pitch: Signal<Out, B16>,
    pub mm_y0: Signal<Out, B16>,
    pub mm_x0: Signal<Out, B16>,
    pub mm_x_first: Signal<Out, B16>,
    pub mm_x_last: Signal<Out, B16>,
    pub mm_ox_step: Signal<Out, B16>,
    pub mm_oy_step: Signal<Out, B16>,
    pub mm_out_w: Signal<Out, B16>,
    pub mm_pixels: Signal<Out, B16>,
    pub mm_wgt: Signal<Out, B16>,
    pub mm_slices: Signal<Out, B16>,
    pub mm_acc: Signal<Out, B16>,
    pub mm_accumulate: Signal<Out, Bit>,
    pub mm_act_signed: Signal<Out, Bit>,
    /// `post`: acc@14 pixels@16 param@18 channels@20 out@22 out_stride@24 lane@26
    /// bits@28 signed@29.
    pub post_acc: Signal<Out, B16>,
    pub post_pixels: Signal<Out, B16>,
    pub post_param: Signal<Out, B16>,
    pub post_channels: Signal<Out, B16>,
    pub post_out: Signal<Out, B16>,
    pub post_out_stride: Signal<Out, B16>,
    pub post_lane: Signal<Out, B16>,
    pub post_bits: Signal<Out, Bits<8>>,
    pub post_signed: Signal<Out, Bit>,
    /// `pool`: act@14 tile_w@16 groups@18 kernel_h@20 kernel_w@21 stride@22
    /// out_h@23 out_w@25 out@27 mode@29 multiplier@30 shift@32 in_signed@33
    /// bits@34 signed@35.
    pub pool_act: Signal<Out, B16>,
    pub pool_tile_w: Signal<Out, B16>,
    pub pool_groups: Signal<Out, B16>,
    pub pool_kernel_h: Signal<Out, Bits<8>>,
    pub pool_kernel_w: Signal<Out, Bits<8>>,
    pub pool_stride: Signal<Out, Bits<8>>,
    pub pool_out_h: Signal<Out, B16>,
    pub pool_out_w: Signal<Out, B16>,
    pub pool_out: Signal<Out, B16>,
    pub pool_mode: Signal<Out, Bit>,
    pub pool_multiplier: Signal<Out, B16>,
    pub pool_shift: Signal<Out, Bits<8>>,
    pub pool_in_signed: Signal<Out, Bit>,
    pub pool_bits: Signal<Out, Bits<8>>,
    pub pool_signed: Signal<Out, Bit>,
    /// `add`: a@14 b@16 out@18 words@20 a_signed@22 b_signed@23 multiplier_a@24
    /// multiplier_b@26 shift@28 bits@29 signed@30.
    pub add_a: Signal<Out, B16>,
    pub add_b: Signal<Out, B16>,
    pub add_out: Signal<Out, B16>,
    pub add_words: Signal<Out, B16>,
    pub add_a_signed: Signal<Out, Bit>,
    pub add_b_signed: Signal<Out, Bit>,
    pub add_multiplier_a: Signal<Out, B16>,
    pub add_multiplier_b: Signal<Out, B16>,
    pub add_shift: Signal<Out, Bits<8>>,
    pub add_bits: Signal<Out, Bits<8>>,
    pub add_signed: Signal<Out, Bit>,
    opcode: Signal<Local, Bits<8>>,
    unused_header: Signal<Local, Bits<104>>,
    unused_mm_flags: Signal<Local, Bits<6>>,
    c_matmul: Constant<Bits<8>>,
    c_post: Constant<Bits<8>>,
    c_pool: Constant<Bits<8>>,
    c_add: Constant<Bits<8>>,
}

impl ExecDecode {
    pub fn new() -> Self {
        let op = |v: u64| Constant::new(v.into());
        Self {
            insn: Default::default(),
            is_matmul: Default::default(),
            is_post: Default::default(),
            is_pool: Default::default(),
            is_add: Default::default(),
            mm_act: Default::default(),
            mm_tile_words: Default::default(),
            mm_pitch: Default::default(),
            mm_y0: Default::default(),
            mm_x0: Default::default(),
            mm_x_first: Default::default(),
            mm_x_last: Default::default(),
            mm_ox_step: Default::default(),
            mm_oy_step: Default::default(),
            mm_out_w: Default::default(),
            mm_pixels: Default::default(),
            mm_wgt: Default::default(),
            mm_slices: Default::default(),
            mm_acc: Default::default(),
            mm_accumulate: Default::default(),
            mm_act_signed: Default::default(),
            post_acc: Default::default(),
            post_pixels: Default::default(),
            post_param: Default::default(),
            post_channels: Default::default(),
            post_out: Default::default(),
            post_out_stride: Default::default(),
            post_lane: Default::default(),
            post_bits: Default::default(),
            post_signed: Default::default(),
            pool_act: Default::default(),
            pool_tile_w: Default::default(),
            pool_groups: Default::default(),
            pool_kernel_h: Default::default(),
            pool_kernel_w: Default::default(),
            pool_stride: Default::default(),
            pool_out_h: Default::default(),
            pool_out_w: Default::default(),
            pool_out: Default::default(),
            pool_mode: Default::default(),
            pool_multiplier: Default::default(),
            pool_shift: Default::default(),
            pool_in_signed: Default::default(),
            pool_bits: Default::default(),
            pool_signed: Default::default(),
            add_a: Default::default(),
            add_b: Default::default(),
            add_out: Default::default(),
            add_words: Default::default(),
            add_a_signed: Default::default(),
            add_b_signed: Default::default(),
            add_multiplier_a: Default::default(),
            add_multiplier_b: Default::default(),
            add_shift: Default::default(),
            add_bits: Default::default(),
            add_signed: Default::default(),
            opcode: Default::default(),
            unused_header: Default::default(),
            unused_mm_flags: Default::default(),
            c_matmul: op(3),
            c_post: op(4),
            c_pool: op(5),
            c_add: op(6),
        }
    }
}

impl Default for ExecDecode {
    fn default() -> Self {
        Self::new()
    }
}

impl Logic for ExecDecode {
    #[hdl_gen]
    fn update(&mut self) {
        self.opcode.next = self.insn.val().get_bits::<8>(0);
        self.is_matmul.next = self.opcode.val() == self.c_matmul.val();
        self.is_post.next = self.opcode.val() == self.c_post.val();
        self.is_pool.next = self.opcode.val() == self.c_pool.val();
        self.is_add.next = self.opcode.val() == self.c_add.val();
        self.unused_header.next = self.insn.val().get_bits::<104>(8);

        self.mm_act.next = self.insn.val().get_bits::<16>(112);
        self.mm_tile_words.next = self.insn.val().get_bits::<16>(128);
        self.mm_pitch.next = self.insn.val().get_bits::<16>(144);
        self.mm_y0.next = self.insn.val().get_bits::<16>(160);
        self.mm_x0.next = self.insn.val().get_bits::<16>(176);
        self.mm_x_first.next = self.insn.val().get_bits::<16>(192);
        self.mm_x_last.next = self.insn.val().get_bits::<16>(208);
        self.mm_ox_step.next = self.insn.val().get_bits::<16>(224);
        self.mm_oy_step.next = self.insn.val().get_bits::<16>(240);
        self.mm_out_w.next = self.insn.val().get_bits::<16>(256);
        self.mm_pixels.next = self.insn.val().get_bits::<16>(272);
        self.mm_wgt.next = self.insn.val().get_bits::<16>(288);
        self.mm_slices.next = self.insn.val().get_bits::<16>(304);
        self.mm_acc.next = self.insn.val().get_bits::<16>(320);
        self.mm_accumulate.next = self.insn.val().get_bit(336);
        self.mm_act_signed.next = self.insn.val().get_bit(337);
        self.unused_mm_flags.next = self.insn.val().get_bits::<6>(338);

        self.post_acc.next = self.insn.val().get_bits::<16>(112);
        self.post_pixels.next = self.insn.val().get_bits::<16>(128);
        self.post_param.next = self.insn.val().get_bits::<16>(144);
        self.post_channels.next = self.insn.val().get_bits::<16>(160);
        self.post_out.next = self.insn.val().get_bits::<16>(176);
        self.post_out_stride.next = self.insn.val().get_bits::<16>(192);
        self.post_lane.next = self.insn.val().get_bits::<16>(208);
        self.post_bits.next = self.insn.val().get_bits::<8>(224);
        self.post_signed.next = self.insn.val().get_bits::<8>(232).any();

        self.pool_act.next = self.insn.val().get_bits::<16>(112);
        self.pool_tile_w.next = self.insn.val().get_bits::<16>(128);
        self.pool_groups.next = self.insn.val().get_bits::<16>(144);
        self.pool_kernel_h.next = self.insn.val().get_bits::<8>(160);
        self.pool_kernel_w.next = self.insn.val().get_bits::<8>(168);
        self.pool_stride.next = self.insn.val().get_bits::<8>(176);
        self.pool_out_h.next = self.insn.val().get_bits::<16>(184);
        self.pool_out_w.next = self.insn.val().get_bits::<16>(200);
        self.pool_out.next = self.insn.val().get_bits::<16>(216);
        self.pool_mode.next = self.insn.val().get_bits::<8>(232).any();
        self.pool_multiplier.next = self.insn.val().get_bits::<16>(240);
        self.pool_shift.next = self.insn.val().get_bits::<8>(256);
        self.pool_in_signed.next = self.insn.val().get_bits::<8>(264).any();
        self.pool_bits.next = self.insn.val().get_bits::<8>(272);
        self.pool_signed.next = self.insn.val().get_bits::<8>(280).any();

        self.add_a.next = self.insn.val().get_bits::<16>(112);
        self.add_b.next = self.insn.val().get_bits::<16>(128);
        self.add_out.next = self.insn.val().get_bits::<16>(144);
        self.add_words.next = self.insn.val().get_bits::<16>(160);
        self.add_a_signed.next = self.insn.val().get_bits::<8>(176).any();
        self.add_b_signed.next = self.insn.val().get_bits::<8>(184).any();
        self.add_multiplier_a.next = self.insn.val().get_bits::<16>(192);
        self.add_multiplier_b.next = self.insn.val().get_bits::<16>(208);
        self.add_shift.next = self.insn.val().get_bits::<8>(224);
        self.add_bits.next = self.insn.val().get_bits::<8>(232);
        self.add_signed.next = self.insn.val().get_bits::<8>(240).any();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use compiler::isa::{encode, Instruction, Op, Waits};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// The encoded instruction as the controller hands it to a decoder.
    fn insn(op: Op, rng: &mut ChaCha8Rng) -> Insn {
        let waits = Waits {
            load: rng.gen(),
            exec: rng.gen(),
            store: rng.gen(),
        };
        let bytes = encode(&[Instruction { op, waits }]);
        assert!(
            bytes[INSN_USED_BYTES..].iter().all(|&b| b == 0),
            "fields past the used bytes"
        );
        let mut word = Insn::default();
        for (k, &b) in bytes[..INSN_USED_BYTES].iter().enumerate() {
            word.set_bits::<8>(8 * k, (b as u64).into());
        }
        word
    }

    fn settle<T: Block>(uut: &mut T) {
        assert!(simulate(uut, 10), "decoder did not settle");
    }

    fn v<const N: usize>(s: &Signal<Out, Bits<N>>) -> u64 {
        s.val().index() as u64
    }

    #[test]
    fn transfers_decode_as_encoded() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut load = LoadDecode::default();
        let mut store = StoreDecode::default();
        load.connect_all();
        store.connect_all();
        for _ in 0..200 {
            let (buffer, addr, dram, rows, row_bytes, dram_stride, buf_stride) = (
                rng.gen::<u8>(),
                rng.gen::<u16>(),
                rng.gen::<u32>(),
                rng.gen::<u16>(),
                rng.gen::<u32>(),
                rng.gen::<u32>(),
                rng.gen::<u32>(),
            );
            load.insn.next = insn(
                Op::Load {
                    buffer,
                    addr,
                    dram,
                    rows,
                    row_bytes,
                    dram_stride,
                    buf_stride,
                },
                &mut rng,
            );
            settle(&mut load);
            let got = [v(&load.dram), v(&load.rows), v(&load.row_bytes), v(&load.dram_stride)];
            assert_eq!(got, [dram as u64, rows as u64, row_bytes as u64, dram_stride as u64]);
            assert_eq!(
                [v(&load.buffer), v(&load.addr), v(&load.buf_stride)],
                [buffer as u64, addr as u64, buf_stride as u64 & 0xffff]
            );
            store.insn.next = insn(
                Op::Store {
                    addr,
                    dram,
                    rows,
                    row_bytes,
                    dram_stride,
                    buf_stride,
                },
                &mut rng,
            );
            settle(&mut store);
            let got = [
                v(&store.dram),
                v(&store.rows),
                v(&store.row_bytes),
                v(&store.dram_stride),
            ];
            assert_eq!(got, [dram as u64, rows as u64, row_bytes as u64, dram_stride as u64]);
            assert_eq!(
                [v(&store.addr), v(&store.buf_stride)],
                [addr as u64, buf_stride as u64 & 0xffff]
            );
        }
    }

    #[test]
    fn exec_instructions_decode_as_encoded() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let mut d = ExecDecode::new();
        d.connect_all();
        for _ in 0..200 {
            let h: [u16; 14] = rng.gen();
            let flags: u8 = rng.gen();
            d.insn.next = insn(
                Op::Matmul {
                    act: h[0],
                    tile_words: h[1],
                    pitch: h[2],
                    y0: h[3] as i16,
                    x0: h[4] as i16,
                    x_first: h[5] as i16,
                    x_last: h[6] as i16,
                    ox_step: h[7],
                    oy_step: h[8],
                    out_w: h[9],
                    pixels: h[10],
                    wgt: h[11],
                    slices: h[12],
                    acc: h[13],
                    flags,
                },
                &mut rng,
            );
            settle(&mut d);
            assert!(d.is_matmul.val() && !d.is_post.val() && !d.is_pool.val() && !d.is_add.val());
            let got16 = [
                &d.mm_act,
                &d.mm_tile_words,
                &d.mm_pitch,
                &d.mm_y0,
                &d.mm_x0,
                &d.mm_x_first,
                &d.mm_x_last,
                &d.mm_ox_step,
                &d.mm_oy_step,
                &d.mm_out_w,
                &d.mm_pixels,
                &d.mm_wgt,
                &d.mm_slices,
                &d.mm_acc,
            ]
            .map(v);
            assert_eq!(got16, h.map(u64::from));
            assert_eq!(
                [d.mm_accumulate.val(), d.mm_act_signed.val()],
                [flags & 1 != 0, flags & 2 != 0]
            );
            let b: [u8; 6] = rng.gen();

            d.insn.next = insn(
                Op::Post {
                    acc: h[0],
                    pixels: h[1],
                    param: h[2],
                    channels: h[3],
                    out: h[4],
                    out_stride: h[5],
                    lane: h[6],
                    bits: b[0],
                    signed: b[1],
                },
                &mut rng,
            );
            settle(&mut d);
            assert!(d.is_post.val() && !d.is_matmul.val());
            let got = [
                &d.post_acc,
                &d.post_pixels,
                &d.post_param,
                &d.post_channels,
                &d.post_out,
                &d.post_out_stride,
                &d.post_lane,
            ]
            .map(v);
            assert_eq!(got, [0, 1, 2, 3, 4, 5, 6].map(|k| h[k] as u64));
            assert_eq!((v(&d.post_bits), d.post_signed.val()), (b[0] as u64, b[1] != 0));

            d.insn.next = insn(
                Op::Pool {
                    act: h[0],
                    tile_w: h[1],
                    groups: h[2],
                    kernel_h: b[0],
                    kernel_w: b[1],
                    stride: b[2],
                    out_h: h[3],
                    out_w: h[4],
                    out: h[5],
                    mode: b[3],
                    multiplier: h[6],
                    shift: b[4],
                    in_signed: b[5],
                    bits: b[0] ^ 0xff,
                    signed: b[1] ^ 1,
                },
                &mut rng,
            );
            settle(&mut d);
            assert!(d.is_pool.val() && !d.is_post.val());
            let got = [
                &d.pool_act,
                &d.pool_tile_w,
                &d.pool_groups,
                &d.pool_out_h,
                &d.pool_out_w,
                &d.pool_out,
                &d.pool_multiplier,
            ]
            .map(v);
            assert_eq!(got, [0, 1, 2, 3, 4, 5, 6].map(|k| h[k] as u64));
            let got8 = [
                &d.pool_kernel_h,
                &d.pool_kernel_w,
                &d.pool_stride,
                &d.pool_shift,
                &d.pool_bits,
            ]
            .map(v);
            assert_eq!(got8, [b[0], b[1], b[2], b[4], b[0] ^ 0xff].map(u64::from));
            assert_eq!(
                [d.pool_mode.val(), d.pool_in_signed.val(), d.pool_signed.val()],
                [b[3] != 0, b[5] != 0, (b[1] ^ 1) != 0]
            );

            d.insn.next = insn(
                Op::Add {
                    a: h[0],
                    b: h[1],
                    out: h[2],
                    words: h[3],
                    a_signed: b[0],
                    b_signed: b[1],
                    multiplier_a: h[4],
                    multiplier_b: h[5],
                    shift: b[2],
                    bits: b[3],
                    signed: b[4],
                },
                &mut rng,
            );
            settle(&mut d);
            assert!(d.is_add.val() && !d.is_pool.val());
            let got = [
                &d.add_a,
                &d.add_b,
                &d.add_out,
                &d.add_words,
                &d.add_multiplier_a,
                &d.add_multiplier_b,
            ]
            .map(v);
            assert_eq!(got, [0, 1, 2, 3, 4, 5].map(|k| h[k] as u64));
            assert_eq!([&d.add_shift, &d.add_bits].map(v), [b[2], b[3]].map(u64::from));
            assert_eq!(
                [d.add_a_signed.val(), d.add_b_signed.val(), d.add_signed.val()],
                [b[0] != 0, b[1] != 0, b[4] != 0]
            );
        }
    }

    #[test]
    fn end_selects_no_engine() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut d = ExecDecode::new();
        d.connect_all();
        d.insn.next = insn(Op::End {}, &mut rng);
        settle(&mut d);
        assert!(!d.is_matmul.val() && !d.is_post.val() && !d.is_pool.val() && !d.is_add.val());
    }
}
