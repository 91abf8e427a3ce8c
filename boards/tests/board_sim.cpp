// A simulated board: board_top's UART pins bridged to this process's stdin (host to
// board) and stdout (board to host), 8N1 at CLKS_PER_BIT clocks per bit, so that the
// host driver (boards::host) can talk to the Verilated wrapper exactly as it talks to
// a serial port. Exits when stdin closes and the line is idle, or with status 2 after
// argv[1] cycles.
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fcntl.h>
#include <unistd.h>

#include "Vboard_top.h"
#include "verilated.h"
#if VM_TRACE
#include "verilated_vcd_c.h"
#endif

int main(int argc, char** argv) {
  const int cpb = CLKS_PER_BIT;
  const uint64_t max_cycles = argc > 1 ? strtoull(argv[1], nullptr, 10) : 1000000000ull;
  Vboard_top top;
  top.clk_pin = 0;
  top.reset_n_pin = 1;
  top.uart_rx_pin = 1;
  top.eval();
#if VM_TRACE
  // Built with --trace: the waveform of the first 200000 cycles goes to board.vcd.
  Verilated::traceEverOn(true);
  VerilatedVcdC vcd;
  top.trace(&vcd, 99);
  vcd.open("board.vcd");
#endif
  fcntl(0, F_SETFL, O_NONBLOCK);

  std::deque<uint8_t> to_board;
  bool host_open = true;
  // Line into the board: frame bits (start, data LSB first, stop), each held cpb cycles.
  uint16_t frame = 0;
  int frame_bit = 10, frame_wait = 0;
  // Line out of the board: -1 idle, else the number of bits sampled.
  int sampled = -1, sample_wait = 0;
  uint8_t byte = 0;

  for (uint64_t cycle = 0; cycle < max_cycles; ++cycle) {
    if (frame_wait > 0) {
      --frame_wait;
    } else if (frame_bit < 10) {
      top.uart_rx_pin = (frame >> frame_bit++) & 1;
      frame_wait = cpb - 1;
    } else {
      // The line stays idle while the wrapper's power-on reset runs, as it does
      // on a board configured before the host talks to it.
      if (to_board.empty() && host_open && cycle >= 64 && cycle % 64 == 0) {
        uint8_t buf[256];
        ssize_t n = read(0, buf, sizeof buf);
        if (n > 0) to_board.insert(to_board.end(), buf, buf + n);
        else if (n == 0) host_open = false;
        else if (errno != EAGAIN && errno != EWOULDBLOCK) host_open = false;
      }
      if (!to_board.empty()) {
        frame = 0x200 | (to_board.front() << 1);
        to_board.pop_front();
        top.uart_rx_pin = 0;
        frame_bit = 1;
        frame_wait = cpb - 1;
      } else if (!host_open && sampled < 0) {
        return 0;
      }
    }
    top.clk_pin = 1;
    top.eval();
    const int tx = top.uart_tx_pin;
    if (sampled < 0) {
      if (!tx) { sampled = 0; sample_wait = cpb + cpb / 2 - 1; }
    } else if (sample_wait > 0) {
      --sample_wait;
    } else if (sampled < 8) {
      byte = (byte >> 1) | (tx << 7);
      ++sampled;
      sample_wait = cpb - 1;
    } else {
      if (tx && write(1, &byte, 1) != 1) return 3;
      sampled = -1;
    }
    top.clk_pin = 0;
    top.eval();
#if VM_TRACE
    if (cycle < 200000) vcd.dump(2 * cycle + 1);
    if (cycle == 200000) vcd.close();
#endif
  }
  return 2;
}
