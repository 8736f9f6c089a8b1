DELETE FROM retention_progress WHERE what IN ('business_seconds_until', 'business_seconds');
ALTER TABLE timers DROP COLUMN business_seconds;
