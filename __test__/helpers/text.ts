/** `text` escaped to match itself, literally, inside a RegExp (a path or a destination label in an expected message). */
export function literal(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}
