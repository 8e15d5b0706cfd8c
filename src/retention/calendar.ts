/**
 * Calendar bucket keys for GFS retention, always computed in UTC so that every instance of a fleet
 * (whatever its TZ) buckets a backup identically. Keys are integers, as in restic:
 * hourly YYYYMMDDHH, daily YYYYMMDD, weekly ISO-week-year*100 + ISO week (weeks run Monday to
 * Sunday; 29 Dec 2025 belongs to 2026-W01), monthly YYYYMM, yearly YYYY. Pure.
 */

export type CalendarUnit = 'hourly' | 'daily' | 'weekly' | 'monthly' | 'yearly';

const DAY_MS = 86_400_000;

export function isoWeekKey(time: number): number {
  const d = new Date(time);
  const mondayBased = (d.getUTCDay() + 6) % 7; // Monday 0 .. Sunday 6
  // The ISO week-year is the year of the week's Thursday.
  const thursday = new Date(0);
  thursday.setUTCFullYear(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() - mondayBased + 3);
  const weekYear = thursday.getUTCFullYear();
  const jan1 = new Date(0);
  jan1.setUTCFullYear(weekYear, 0, 1);
  const week = 1 + Math.floor((thursday.getTime() - jan1.getTime()) / DAY_MS / 7);
  return weekYear * 100 + week;
}

export function calendarKey(unit: CalendarUnit, time: number): number {
  const d = new Date(time);
  const y = d.getUTCFullYear();
  switch (unit) {
    case 'hourly':
      return y * 1_000_000 + (d.getUTCMonth() + 1) * 10_000 + d.getUTCDate() * 100 + d.getUTCHours();
    case 'daily':
      return y * 10_000 + (d.getUTCMonth() + 1) * 100 + d.getUTCDate();
    case 'weekly':
      return isoWeekKey(time);
    case 'monthly':
      return y * 100 + d.getUTCMonth() + 1;
    case 'yearly':
      return y;
  }
}
