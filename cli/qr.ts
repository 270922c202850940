/**
 * Draws text as a QR code for a terminal, two modules per character cell with half blocks. Light modules are
 * drawn, dark ones left blank, which scans on the usual light-on-dark terminal. qrcode-generator makes the matrix.
 */
import qrcode from 'qrcode-generator';

const QUIET_ZONE_MODULES = 2;

/** The QR code of `text` (error correction level M) as lines of text. */
export function renderQr(text: string): string {
  const code = qrcode(0, 'M');
  code.addData(text);
  code.make();
  const size = code.getModuleCount();
  const isLight = (row: number, column: number): boolean => {
    const inside = row >= 0 && column >= 0 && row < size && column < size;
    return !inside || !code.isDark(row, column);
  };
  const lines: string[] = [];
  for (let row = -QUIET_ZONE_MODULES; row < size + QUIET_ZONE_MODULES; row += 2) {
    let line = '';
    for (let column = -QUIET_ZONE_MODULES; column < size + QUIET_ZONE_MODULES; column++) {
      const top = isLight(row, column);
      const bottom = row + 1 < size + QUIET_ZONE_MODULES ? isLight(row + 1, column) : false;
      line += top && bottom ? '█' : top ? '▀' : bottom ? '▄' : ' ';
    }
    lines.push(line);
  }
  return lines.join('\n');
}
