// divqat board host interface: a UART (8N1, LSB first) through which the host
// serves the accelerator's instruction and data memory. Protocol (docs/boards.md):
//   host -> board  'S'                          start a run (ignored while one runs)
//   board -> host  'I' index[4]                 host answers INSN_BYTES instruction bytes
//   board -> host  'R' addr[4]                  host answers BUS_BYTES data bytes
//   board -> host  'W' addr[4] strobe[SB] data[BUS_BYTES]   posted write, no answer
//   board -> host  'D' status[1] cycles[4]      the run finished
// Multi-byte fields are little-endian; SB = ceil(BUS_BYTES / 8) strobe bytes, bit k
// of the strobe field enables data byte k. The bridge serves one request at a time,
// in the order it accepted them, so the host sees every write before the next read.

// Receiver: samples the middle of each bit; a byte whose stop bit is low is dropped.
module divqat_uart_rx #(parameter CLKS_PER_BIT = 12) (
  input wire clock,
  input wire reset,
  input wire rx,
  output reg valid,
  output reg [7:0] data
);
  localparam FIRST_WAIT = CLKS_PER_BIT + CLKS_PER_BIT / 2 - 1;
  localparam WAIT_BITS = $clog2(FIRST_WAIT + 1);
  reg [1:0] sync;             // two flip-flops against metastability
  reg receiving;
  reg [3:0] bit_index;        // data bits sampled so far; 8 = at the stop bit
  reg [WAIT_BITS-1:0] wait_clks;
  always @(posedge clock) begin
    sync <= {sync[0], rx};
    valid <= 1'b0;
    if (reset) begin
      receiving <= 1'b0;
      sync <= 2'b11;
    end else if (!receiving) begin
      if (!sync[1]) begin     // start bit: wait to the middle of data bit 0
        receiving <= 1'b1;
        bit_index <= 4'd0;
        wait_clks <= FIRST_WAIT[WAIT_BITS-1:0];
      end
    end else if (wait_clks != 0) begin
      wait_clks <= wait_clks - 1'b1;
    end else if (bit_index == 4'd8) begin
      receiving <= 1'b0;
      valid <= sync[1];
    end else begin
      data <= {sync[1], data[7:1]};
      bit_index <= bit_index + 1'b1;
      wait_clks <= CLKS_PER_BIT[WAIT_BITS-1:0] - 1'b1;
    end
  end
endmodule

// Transmitter: `send` while `ready` takes `data`; the line idles high.
module divqat_uart_tx #(parameter CLKS_PER_BIT = 12) (
  input wire clock,
  input wire reset,
  input wire send,
  input wire [7:0] data,
  output wire ready,
  output reg tx
);
  localparam WAIT_BITS = $clog2(CLKS_PER_BIT + 1);
  reg [9:0] shift;            // stop, data[7:0], start: shifted out LSB first
  reg [3:0] steps_left;       // 10 bits, then one more step that ends the stop bit
  reg [WAIT_BITS-1:0] wait_clks;
  assign ready = steps_left == 4'd0;
  always @(posedge clock) begin
    if (reset) begin
      steps_left <= 4'd0;
      tx <= 1'b1;
    end else if (steps_left == 4'd0) begin
      tx <= 1'b1;
      if (send) begin
        shift <= {1'b1, data, 1'b0};
        steps_left <= 4'd11;
        wait_clks <= 0;
      end
    end else if (wait_clks != 0) begin
      wait_clks <= wait_clks - 1'b1;
    end else begin
      tx <= shift[0];
      shift <= {1'b1, shift[9:1]};
      steps_left <= steps_left - 1'b1;
      wait_clks <= CLKS_PER_BIT[WAIT_BITS-1:0] - 1'b1;
    end
  end
endmodule

module divqat_host_bridge #(
  parameter CLKS_PER_BIT = 12,
  parameter BUS_BYTES = 4,
  parameter INSN_BYTES = 43
) (
  input wire clock,
  input wire reset,
  input wire uart_rx,
  output wire uart_tx,
  // Accelerator host port.
  output reg acc_start,
  input wire acc_done,
  input wire [31:0] acc_cycles,
  input wire [7:0] acc_status,
  // Instruction port.
  input wire ins_req_valid,
  output wire ins_req_ready,
  input wire [31:0] ins_req_index,
  output wire ins_resp_valid,
  input wire ins_resp_ready,
  output wire [8*INSN_BYTES-1:0] ins_resp_data,
  // Data read channel.
  input wire rd_req_valid,
  output wire rd_req_ready,
  input wire [31:0] rd_req_addr,
  output wire rd_resp_valid,
  input wire rd_resp_ready,
  output wire [8*BUS_BYTES-1:0] rd_resp_data,
  // Data write channel.
  input wire wr_req_valid,
  output wire wr_req_ready,
  input wire [31:0] wr_req_addr,
  input wire [8*BUS_BYTES-1:0] wr_req_data,
  input wire [BUS_BYTES-1:0] wr_req_strobe,
  // High while a run is in progress (an LED).
  output wire running
);
  localparam STROBE_BYTES = (BUS_BYTES + 7) / 8;
  localparam FRAME_BYTES = 5 + STROBE_BYTES + BUS_BYTES;
  localparam [2:0] S_IDLE = 3'd0,  // waiting for the host's 'S'
                   S_FREE = 3'd1,  // offering `ready` to one request channel per cycle
                   S_SEND = 3'd2,  // sending `frame`
                   S_RECV = 3'd3,  // receiving the answer into `answer`
                   S_RESP = 3'd4;  // presenting the answer to the accelerator
  localparam [1:0] CH_INS = 2'd0, CH_RD = 2'd1, CH_WR = 2'd2;
  localparam [7:0] CHAR_START = 8'h53, CHAR_INS = 8'h49, CHAR_READ = 8'h52,
                   CHAR_WRITE = 8'h57, CHAR_DONE = 8'h44;

  reg [2:0] state;
  reg [1:0] turn;       // the channel offered `ready` in S_FREE; rotates every cycle
  reg [1:0] serving;    // the channel whose request is being served
  reg finished;         // `acc_done` seen since the last start
  reg final_frame;      // `frame` is the 'D' report: the run ends after it
  reg [8*FRAME_BYTES-1:0] frame;
  reg [7:0] frame_left;
  reg [7:0] answer_left;
  reg [8*INSN_BYTES-1:0] answer;  // bytes arrive at the top and shift down

  wire rx_valid;
  wire [7:0] rx_data;
  wire tx_ready;
  wire tx_send = state == S_SEND && tx_ready;

  divqat_uart_rx #(.CLKS_PER_BIT(CLKS_PER_BIT)) receiver (
    .clock(clock), .reset(reset), .rx(uart_rx), .valid(rx_valid), .data(rx_data));
  divqat_uart_tx #(.CLKS_PER_BIT(CLKS_PER_BIT)) transmitter (
    .clock(clock), .reset(reset), .send(tx_send), .data(frame[7:0]), .ready(tx_ready), .tx(uart_tx));

  // `ready` depends only on the bridge's own state, never on `valid`.
  wire offering = state == S_FREE && !finished;
  assign ins_req_ready = offering && turn == CH_INS;
  assign rd_req_ready = offering && turn == CH_RD;
  assign wr_req_ready = offering && turn == CH_WR;
  assign ins_resp_valid = state == S_RESP && serving == CH_INS;
  assign rd_resp_valid = state == S_RESP && serving == CH_RD;
  assign ins_resp_data = answer;
  assign rd_resp_data = answer[8*INSN_BYTES-1 -: 8*BUS_BYTES];
  assign running = state != S_IDLE;

  wire [8*STROBE_BYTES-1:0] strobe_field = {{(8*STROBE_BYTES-BUS_BYTES){1'b0}}, wr_req_strobe};
  wire answered = (serving == CH_INS && ins_resp_ready) || (serving == CH_RD && rd_resp_ready);

  always @(posedge clock) begin
    acc_start <= 1'b0;
    if (acc_done) finished <= 1'b1;
    if (reset) begin
      state <= S_IDLE;
      turn <= CH_INS;
      finished <= 1'b0;
    end else begin
      case (state)
        S_IDLE:
          if (rx_valid && rx_data == CHAR_START) begin
            acc_start <= 1'b1;
            finished <= 1'b0;
            state <= S_FREE;
          end
        S_FREE: begin
          turn <= (turn == CH_WR) ? CH_INS : turn + 1'b1;
          serving <= turn;
          if (finished) begin
            frame <= {{(8*(FRAME_BYTES-6)){1'b0}}, acc_cycles, acc_status, CHAR_DONE};
            frame_left <= 8'd6;
            answer_left <= 8'd0;
            final_frame <= 1'b1;
            state <= S_SEND;
          end else if ((ins_req_ready && ins_req_valid) || (rd_req_ready && rd_req_valid)) begin
            // A fetch or a read: tag and 32-bit index/address, answered by the host.
            frame <= {{(8*(FRAME_BYTES-5)){1'b0}},
                      ins_req_ready ? ins_req_index : rd_req_addr,
                      ins_req_ready ? CHAR_INS : CHAR_READ};
            frame_left <= 8'd5;
            answer_left <= ins_req_ready ? INSN_BYTES[7:0] : BUS_BYTES[7:0];
            final_frame <= 1'b0;
            state <= S_SEND;
          end else if (wr_req_ready && wr_req_valid) begin
            frame <= {wr_req_data, strobe_field, wr_req_addr, CHAR_WRITE};
            frame_left <= FRAME_BYTES[7:0];
            answer_left <= 8'd0;
            final_frame <= 1'b0;
            state <= S_SEND;
          end
        end
        S_SEND:
          if (tx_send) begin
            frame <= frame >> 8;
            frame_left <= frame_left - 1'b1;
            if (frame_left == 8'd1) begin
              if (final_frame) state <= S_IDLE;
              else if (answer_left == 8'd0) state <= S_FREE;
              else state <= S_RECV;
            end
          end
        S_RECV:
          if (rx_valid) begin
            answer <= {rx_data, answer[8*INSN_BYTES-1:8]};
            answer_left <= answer_left - 1'b1;
            if (answer_left == 8'd1) state <= S_RESP;
          end
        S_RESP:
          if (answered) state <= S_FREE;
        default: state <= S_IDLE;
      endcase
    end
  end
endmodule
